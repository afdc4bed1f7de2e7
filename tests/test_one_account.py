"""One account of a run: every view an operator or a reviewer reads says the same.

For each kind of run (succeeded, failed at the provider, served by a fallback model, waiting at an
approval, rejected by an operator, resumed after `kill -9`) the figures of `proctor runs show --json`,
`proctor runs list --json`, `proctor usage --run --json`, the stored spans' `gen_ai.usage.*` and the
console's run JSON (`/api/runs/RUN` and `/api/runs`) are equal: requests, tokens in, tokens out (and
cost, where the view has one). A failed or waiting run shows what it has spent so far, not 0+0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from proctor import ModelRegistry, ModelRouter, Specialist, Supervisor, Team
from proctor.cli import main
from proctor.console import Operator, create_app
from proctor.guardrails import ApprovalPolicy, ApprovalQueue, ApprovalRule
from proctor.state._schema import delegations, runs
from proctor.state._store import StateStore
from proctor.testing import ScriptedModel, delegate, fail, text, tool_call, tool_results, turn_of
from proctor.tracing._store import TraceStore

CLASSES = ['public', 'internal', 'confidential']
CRASH_TEAM = Path(__file__).with_name('crash_team.py')


def publish(channel: str) -> str:
    """Publish the findings (needs an operator's approval)."""
    return f'published to {channel}'


def build_team(*, sonnet_fails: bool = False, boss_fails: bool = False, approval: bool = False) -> Team:
    """boss (the supervisor) delegates to the analyst, whose chain is sonnet then gpt4o; priced models."""

    def boss(messages):
        if turn_of(messages) == 0:
            return [delegate('analyst', 'size the market')]
        if boss_fails:
            raise fail(503)  # the supervisor's only model is down: the run fails at the provider
        return text('report: ' + ' | '.join(tool_results(messages)))

    def analyst(name: str):
        def answer(messages):
            if sonnet_fails and name == 'sonnet':
                raise fail(503)
            if approval and turn_of(messages) == 0:
                return [tool_call('publish', {'channel': 'team'})]
            return text(f'{name}: the market is large ({" ".join(tool_results(messages))})')

        return ScriptedModel(answer, name=name)

    def model(m: Any, usd_in: float, usd_out: float) -> dict:
        return {'model': m, 'usd_per_m_input': usd_in, 'usd_per_m_output': usd_out, 'data_classes': CLASSES}

    registry = ModelRegistry(
        {
            'boss': model(ScriptedModel(boss, name='boss'), 3.0, 15.0),
            'sonnet': model(analyst('sonnet'), 3.0, 15.0),
            'gpt4o': model(analyst('gpt4o'), 2.5, 10.0),
        }
    )
    policy = {
        'specialists': {
            'supervisor': {'preferred': 'boss'},
            'analyst': {'preferred': 'sonnet', 'fallback': ['gpt4o']},
        }
    }
    guards = [ApprovalPolicy([ApprovalRule(tool='publish', reason='publishing needs a human')])] if approval else []
    return Team(
        Supervisor(),
        [Specialist('analyst', 'Analyse.', tools=[publish] if approval else [])],
        name='market',
        durable=False,
        router=ModelRouter(registry, policy),
        guardrails=guards,
    )


# ---------------------------------------------------------------------------------------------- the views


def _cli_json(capsys, *args: str) -> Any:
    capsys.readouterr()
    main(list(args))
    return json.loads(capsys.readouterr().out)


def _console(state_dir: Path) -> TestClient:
    client = TestClient(create_app(StateStore(state_dir), operators=[Operator.with_token('bob', 'bob-token', ['r'])]))
    page = client.get('/login')
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post('/login', data={'token': 'bob-token', 'login_csrf': login_csrf, 'next': '/runs'})
    assert r.status_code == 200, r.text
    return client


def views(state_dir: Path, run_id: str, capsys) -> dict[str, tuple]:
    """(requests, tokens in, tokens out, cost) of `run_id` as each view reports it (spans: no cost)."""
    show = _cli_json(capsys, 'runs', 'show', run_id, '--json')
    listed = next(r for r in _cli_json(capsys, 'runs', 'list', '--json') if r['run_id'] == run_id)
    usage = _cli_json(capsys, 'usage', '--run', run_id, '--json')['total']
    spans = TraceStore(StateStore(state_dir)).spans_of_run(run_id, show['trace_id'])
    chats = [s.attributes for s in spans if s.name.startswith('chat') and 'gen_ai.usage.input_tokens' in s.attributes]
    with _console(state_dir) as client:
        page = client.get(f'/api/runs/{run_id}').json()
        row = next(r for r in client.get('/api/runs').json()['runs'] if r['run_id'] == run_id)

    def figures(d: dict, requests: str = 'requests') -> tuple:
        return (d[requests], d['input_tokens'], d['output_tokens'], round(d['cost_usd'], 9))

    store = StateStore(state_dir)
    with store.engine.connect() as c:  # the rows themselves, as any SQL reader (a dashboard) sees them
        row_of_run = dict(c.execute(sa.select(runs).where(runs.c.run_id == show['run_id'])).mappings().one())
        rows_of_delegations = [
            dict(r) for r in c.execute(sa.select(delegations).where(delegations.c.run_id == show['run_id'])).mappings()
        ]
    for d in show['delegations']:
        raw = next(r for r in rows_of_delegations if r['delegation_id'] == d['delegation_id'])
        assert figures(raw) == figures(d), (raw, d)
    return {
        'proctor_runs row': figures(row_of_run),
        'runs show --json': figures(show),
        'runs list --json': figures(listed),
        'usage --run --json': figures(usage, 'calls'),
        'console /api/runs/RUN': figures(page),
        'console /api/runs': figures(row),
        'spans gen_ai.usage.*': (
            len(chats),
            sum(a['gen_ai.usage.input_tokens'] for a in chats),
            sum(a['gen_ai.usage.output_tokens'] for a in chats),
        ),
    }


def assert_one_account(state_dir: Path, run_id: str, capsys, *, requests: int) -> dict[str, tuple]:
    v = views(state_dir, run_id, capsys)
    costed = {k: f for k, f in v.items() if len(f) == 4}
    assert len(set(costed.values())) == 1, v
    assert {f[:3] for f in v.values()} == {next(iter(costed.values()))[:3]}, v
    n, tin, tout = v['runs show --json'][:3]
    assert n == requests and tin > 0 and tout > 0, v
    # a delegation's share is its own calls: the analyst's rows in the ledger
    show = _cli_json(capsys, 'runs', 'show', run_id, '--json')
    by = {r['key']: r for r in _cli_json(capsys, 'usage', '--run', run_id, '--by', 'specialist', '--json')['rows']}

    def key(d: dict) -> str:  # `usage --by specialist` names a sub-team's member by its agent path
        return d['specialist'] if d['agent_path'].count('>') == 1 else d['agent_path']

    for name in {key(d) for d in show['delegations']}:
        mine = [d for d in show['delegations'] if key(d) == name]
        assert tuple(sum(d[k] for d in mine) for k in ('requests', 'input_tokens', 'output_tokens')) == (
            by[name]['calls'],
            by[name]['input_tokens'],
            by[name]['output_tokens'],
        ), (name, show['delegations'], by)
    return v


# ---------------------------------------------------------------------------------------------- run kinds


def test_a_succeeded_run(state_dir, capsys):
    result = build_team().run_sync('size it')
    assert result.status == 'succeeded'
    assert_one_account(state_dir, result.run_id, capsys, requests=3)
    show = _cli_json(capsys, 'runs', 'show', result.run_id, '--json')
    assert show['delegations'][0]['route'].startswith('sonnet (first choice) · plan: analyst → sonnet')
    assert (result.usage.requests, result.usage.input_tokens) == (show['requests'], show['input_tokens'])


def test_a_run_that_failed_at_the_provider_shows_what_it_spent(state_dir, capsys):
    team = build_team(boss_fails=True)
    with pytest.raises(Exception, match='503'):
        team.run_sync('size it')
    (rec,) = team.list_runs()
    assert rec.status == 'failed'
    v = assert_one_account(state_dir, rec.run_id, capsys, requests=2)  # the boss's first call, the analyst's
    assert v['runs show --json'][1] > 0  # not 0+0 while the ledger counts two calls


def test_a_fallback_run_says_which_model_served_and_why(state_dir, capsys):
    result = build_team(sonnet_fails=True).run_sync('size it')
    assert result.output.startswith('report: gpt4o:')
    assert_one_account(state_dir, result.run_id, capsys, requests=3)
    (d,) = _cli_json(capsys, 'runs', 'show', result.run_id, '--json')['delegations']
    assert (d['preferred_model'], d['model_id']) == ('sonnet', 'gpt4o')
    assert d['route'].startswith('sonnet → gpt4o (fell back: sonnet failed: ModelHTTPError: status_code: 503')
    assert 'so gpt4o served' in d['route'] and 'plan: analyst → sonnet: first choice of the policy chain' in d['route']
    capsys.readouterr()
    main(['runs', 'show', result.run_id])
    assert 'route: sonnet → gpt4o (fell back: sonnet failed' in ' '.join(capsys.readouterr().out.split())


async def _until_pending(queue: ApprovalQueue, timeout: float = 30) -> Any:
    with anyio.fail_after(timeout):
        while not (pending := await anyio.to_thread.run_sync(lambda: queue.list(status='pending'))):
            await anyio.sleep(0.02)
    return pending[0]


@pytest.mark.anyio
@pytest.mark.parametrize('decision', ['approve', 'reject'])
async def test_a_run_waiting_at_an_approval_then_decided(state_dir, capsys, decision):
    team = build_team(approval=True)
    queue = ApprovalQueue(team.store)
    out: dict = {}

    async def run() -> None:
        out['r'] = await team.run('size it')

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        pending = await _until_pending(queue)
        # in flight: what it has spent so far, the same everywhere (the boss's delegation, the analyst's tool call)
        v = await anyio.to_thread.run_sync(lambda: assert_one_account(state_dir, pending.run_id, capsys, requests=2))
        assert v['console /api/runs/RUN'][1] > 0
        with _console(state_dir) as client:
            page = client.get(f'/runs/{pending.run_id}').text
            run_json = client.get(f'/api/runs/{pending.run_id}').json()
        assert run_json['status'] == 'waiting'
        assert 'needs approval: waiting for operator' in page and '>approve<' not in page
        # the trace: the waiting agents' spans are stored open, and their model calls hang under them
        spans = {s['span_id']: s for s in run_json['spans']}
        agents = [s for s in spans.values() if s['name'].startswith('invoke_agent')]
        assert len(agents) == 2 and all(s['end_ns'] is None for s in agents)  # the supervisor and the analyst
        chats = [s for s in spans.values() if s['name'].startswith('chat')]
        assert len(chats) == 2 and all(spans[c['parent_id']]['name'].startswith('invoke_agent') for c in chats)
        assert page.count('running · ') >= 4  # team.run, delegate, two agents: drawn as running
        act = queue.approve if decision == 'approve' else queue.reject
        await anyio.to_thread.run_sync(
            lambda: act(pending.approval_id, decider='alice', roles=['operator'], reason='k')
        )
    result = out['r']
    assert result.status == 'succeeded'
    assert ('published to team' in result.output) is (decision == 'approve')
    await anyio.to_thread.run_sync(lambda: assert_one_account(state_dir, result.run_id, capsys, requests=4))
    with _console(state_dir) as client:
        page = client.get(f'/runs/{result.run_id}').text
    assert f'needs approval: {decision.rstrip("e")}ed by alice' in page


def _wait(predicate, what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f'timed out waiting for {what}')


@pytest.mark.slow
def test_a_run_resumed_after_kill_9(tmp_path, monkeypatch, capsys):
    """The crash team (`tests/crash_team.py`) is killed while waiting for an approval, approved from here,
    and resumed by `proctor resume` in a new process: every view counts each model call once."""
    state_dir = tmp_path / 'state'
    monkeypatch.setenv('PROCTOR_STATE_DIR', str(state_dir))
    env = {**os.environ, 'CRASH_DIR': str(tmp_path), 'PROCTOR_STATE_DIR': str(state_dir)}
    proc = subprocess.Popen(
        [sys.executable, str(CRASH_TEAM), 'crash-account'],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        queue = ApprovalQueue(StateStore(state_dir))
        pending = _wait(lambda: queue.list(status='pending'), 'a pending approval')[0]
        before = views(state_dir, 'crash-account', capsys)  # waiting: spent so far, as the ledger has it
        assert len(set(f[:3] for f in before.values())) == 1 and before['runs show --json'][1] > 0, before
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    queue.approve(pending.approval_id, decider='ops', roles=['operator'], reason='ok')
    resumed = subprocess.run(
        [sys.executable, '-m', 'proctor', 'resume', 'crash-account'],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout.strip().splitlines()[-1])['status'] == 'succeeded'
    # the supervisor twice, coding three times, research once: each counted once, though two processes ran it
    after = assert_one_account(state_dir, 'crash-account', capsys, requests=6)
    assert after['runs show --json'][1] > before['runs show --json'][1]


def test_durations_read_as_a_person_would():
    from proctor.cli._traces import _ms
    from proctor.console._waterfall import _label
    from proctor.core._format import human_duration

    assert _label(290266.9) == _ms(290266.9) == human_duration(290.2669) == '4 min 50 s'  # not 290266.9 ms
    assert [human_duration(s) for s in (0.0042, 0.85, 12.34, 60, 7500, 200000)] == [
        '4.2 ms',
        '850 ms',
        '12.3 s',
        '1 min',
        '2 h 5 min',
        '2 d 7 h',
    ]
    assert human_duration(None) == '–' and human_duration(None, missing='-') == '-'


def note(n: int) -> str:
    """Take a note."""
    return f'noted {n}'


def test_a_nested_run_and_its_replay_without_a_factory(state_dir, capsys):
    """supervisor → coding (a lead) → tester (with a tool): each level's calls are counted once, in
    every view; a script's nested run replays from its recording alone (the sub-team rebuilt by path)."""
    from proctor.orchestrator import replay_sync

    def joined(prefix: str):
        return lambda m: text(f'{prefix}: ' + ' | '.join(tool_results(m)))

    tester = Specialist(
        'tester', 'Test.', model=ScriptedModel([tool_call('note', {'n': 1}), joined('tester')]), tools=[note]
    )
    coding = Specialist(
        'coding',
        'Lead coding.',
        model=ScriptedModel([[delegate('tester', 'test it')], joined('coding')]),
        team=[tester],
    )
    team = Team(
        Supervisor(model=ScriptedModel([[delegate('coding', 'build it')], joined('supervisor')])),
        [coding],
        name='nested-account',
        durable=False,
    )
    result = team.run_sync('ship it')
    assert result.output == 'supervisor: coding: tester: noted 1'
    assert_one_account(state_dir, result.run_id, capsys, requests=6)  # two calls at each of the three levels
    show = _cli_json(capsys, 'runs', 'show', result.run_id, '--json')
    assert sorted(d['agent_path'] for d in show['delegations']) == ['supervisor>coding', 'supervisor>coding>tester']
    report = replay_sync(result.run_id)
    assert report.ok, report.summary()
    assert (report.replayed_model_calls, report.live_model_calls, report.replayed_tool_calls) == (6, 0, 3)
