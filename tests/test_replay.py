"""Replay: a recorded run re-lived with zero live model calls and zero side effects, divergences
found, a missing recording failing closed, a fork continuing live and diffed against the original.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from pydantic_ai import TextOutput

from proctor import Specialist, Supervisor, Team
from proctor.cli._app import main as cli
from proctor.exceptions import MissingRecording, ReplayDivergence, UserError
from proctor.guardrails._protocol import Decision
from proctor.orchestrator import replay, replay_sync
from proctor.state._schema import recordings
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_call, tool_results, turn_of
from proctor.tracing import Recording, flush_store

HERE = Path(__file__).resolve()
SIDE_EFFECTS: list[str] = []


def write_note(note: str) -> str:
    """Write a note somewhere (a side effect)."""
    SIDE_EFFECTS.append(note)
    return f'wrote {note!r}'


def check_note(note: str) -> str:
    """Check a note; asks for a retry the first time."""
    if 'draft' in note:
        from pydantic_ai import ModelRetry

        raise ModelRetry('no drafts, give the final note')
    return 'ok'


@pytest.fixture(autouse=True)
def _cli_keeps_logging_alone(monkeypatch):
    # The CLI points structlog at the current stderr; under pytest that is a capture file closed after
    # the test, and loggers cached meanwhile would write to it in later tests.
    monkeypatch.setattr('proctor.cli._app._configure_logging', lambda log_json: None)


class Redact:
    """Redacts `word` in every task and subtask."""

    hooks = frozenset({'input'})

    def __init__(self, word: str) -> None:
        self.word = word
        self.name = f'redact-{word}'

    def check(self, payload, ctx):
        if isinstance(payload, str) and self.word in payload:
            return Decision.redact(payload.replace(self.word, '***'), f'{self.word} is private')
        return Decision.allow()


def build_team(*, word: str = 'secret', name: str = 'replayed') -> Team:
    """Supervisor -> research (one tool, then a tool that retries once) and coding, in parallel."""

    def supervisor(messages):
        results = tool_results(messages, 'delegate_to_research') + tool_results(messages, 'delegate_to_coding')
        if not results:
            return [delegate('research', 'look up the secret api'), delegate('coding', 'write the client')]
        return text('final: ' + ' | '.join(sorted(results)))

    def research(messages):
        turn = len(tool_results(messages))
        if turn == 0:
            return [tool_call('write_note', {'note': last_user_prompt(messages)})]
        if turn == 1:
            return [tool_call('check_note', {'note': 'a draft'})]
        if turn == 2:
            return [tool_call('check_note', {'note': 'final'})]
        return text(f'research done ({tool_results(messages)[0]})')

    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='sup-model')),
        [
            Specialist(
                'research', 'Research.', model=ScriptedModel(research, name='res-model'), tools=[write_note, check_note]
            ),
            Specialist(
                'coding',
                'Code.',
                model=ScriptedModel(lambda m: text(f'code for {last_user_prompt(m)}'), name='cod-model'),
            ),
        ],
        name=name,
        durable=False,
        guardrails=[Redact(word)],
        factory=f'{HERE}:build_team',
    )


def calls(team: Team) -> dict[str, int]:
    return {n: a.model.calls for n, a in [('supervisor', team.supervisor), *team.specialists.items()]}


@pytest.fixture
async def recorded(state_dir):
    SIDE_EFFECTS.clear()
    team = build_team()
    result = await team.run('ship the secret client', project='p', data_class='internal')
    assert result.output == "final: code for write the client | research done (wrote 'look up the *** api')"
    assert SIDE_EFFECTS == ['look up the *** api']
    flush_store(team.store)  # the run's recordings are written in the background: now, for the raw SQL below
    return team, result


pytestmark = pytest.mark.anyio


async def test_replay_makes_zero_live_calls_and_zero_side_effects(recorded):
    team, result = recorded
    before = calls(team)
    report = await replay(result.run_id, team=team)
    assert report.ok, report.summary()
    assert report.divergences == [] and report.status == 'succeeded' and report.output == result.output
    assert report.input_changes == []  # every model was asked exactly what it was asked in the run
    assert (report.replayed_model_calls, report.live_model_calls) == (sum(before.values()), 0) == (7, 0)
    # 3 tool calls and the 2 delegations (each a recorded tool call of the supervisor)
    assert (report.replayed_tool_calls, report.live_tool_calls) == (5, 0)
    assert calls(team) == before  # no scripted model was asked anything
    assert SIDE_EFFECTS == ['look up the *** api']  # the tool did not run again
    assert report.steps[0] == 'supervisor#model:1'


async def test_replay_of_a_durable_run(state_dir):
    team = build_team(name='replayed-durable')
    team_d = Team(
        team.supervisor,
        list(team.specialists.values()),
        name='replayed-durable',
        durable=True,
        guardrails=team.guardrails,
    )
    result = await team_d.run('ship the secret client')
    before = calls(team_d)
    report = await replay(result.run_id, team=team_d)
    assert report.ok, report.summary()
    assert report.live_model_calls == 0 and calls(team_d) == before


async def test_a_changed_guardrail_is_a_divergence(recorded):
    team, result = recorded
    changed = build_team(word='client', name='replayed-changed')  # now redacts another word
    report = await replay(result.run_id, team=changed, state_dir=team.store.state_dir)
    assert not report.ok and report.live_model_calls == 0
    by_step = {d.step: d for d in report.divergences}
    assert by_step['supervisor#guard:1'].expected == 'input redact-secret: redact'
    assert by_step['supervisor#guard:1'].got == 'input redact-client: redact'
    assert 'run#output' not in by_step  # the recorded answers still led to the same output
    # and the replay says where a model was asked something else than when it gave its recorded answer
    coding = next(
        d for d in report.input_changes if d.step.startswith('supervisor>coding:') and d.step.endswith('#model:1')
    )
    assert (coding.expected, coding.got) == ('last message "write the client"', 'last message "write the ***"')
    with pytest.raises(ReplayDivergence, match='replay diverged at'):
        report.raise_for_divergence()


async def test_a_step_with_no_recording_fails_closed(recorded):
    team, result = recorded
    with team.store.engine.begin() as c:
        gone = c.execute(
            sa.delete(recordings).where(
                recordings.c.run_id == result.run_id, recordings.c.step.like('supervisor>research:%#model:3')
            )
        ).rowcount
    assert gone == 1
    before = calls(team)
    with pytest.raises(MissingRecording) as e:
        await replay(result.run_id, team=team)
    assert e.value.step.startswith('supervisor>research:') and e.value.step.endswith('#model:3')
    assert f"no recording for step '{e.value.step}'" in str(e.value)
    assert calls(team) == before and len(SIDE_EFFECTS) == 1


async def test_fork_continues_live_with_another_model_and_diffs(recorded):
    team, result = recorded
    rec = Recording.from_store(team.store, result.run_id)
    fork_step = next(
        s.step for s in rec.steps if s.step.startswith('supervisor>research:') and s.step.endswith('#model:4')
    )
    fresh = ScriptedModel(
        lambda m: (
            [tool_call('write_note', {'note': 'second thoughts'})]
            if len(tool_results(m)) == 3
            else text('research redone')
        ),
        name='fresh-model',
    )
    before = calls(team)
    report = await replay(result.run_id, team=team, fork_at=fork_step, models={'research': fresh})
    assert report.ok and report.fork_at == fork_step
    assert fresh.calls == 2 and report.live_model_calls == 3  # research twice on the new model, then the supervisor
    assert calls(team)['supervisor'] == before['supervisor'] + 1 and calls(team)['research'] == before['research']
    assert SIDE_EFFECTS == ['look up the *** api', 'second thoughts']  # live tool calls do run after the fork
    d = report.diff
    assert d.original_output == result.output and d.fork_output == 'final: code for write the client | research redone'
    assert d.tool_calls_added == ['supervisor>research: write_note({"note": "second thoughts"})']
    assert d.tool_calls_removed == []
    assert d.fork_tokens != d.original_tokens and d.fork_tokens[0] > d.original_tokens[0]
    assert d.live_steps[0] == fork_step and d.unpriced_models == ['fresh-model']  # the default router has no prices


async def test_fork_at_a_step_number_and_bad_fork_arguments(recorded):
    team, result = recorded
    report = await replay(result.run_id, team=team, fork_at=1)
    assert report.fork_at == 'supervisor#model:1' and report.replayed_model_calls == 0 and report.live_model_calls == 7
    with pytest.raises(Exception, match='model steps 1..7'):
        await replay(result.run_id, team=team, fork_at=99)
    with pytest.raises(Exception, match="no agent 'nobody'"):
        await replay(result.run_id, team=team, fork_at=1, models={'nobody': 'test'})
    with pytest.raises(Exception, match='--model needs --fork-at'):
        await replay(result.run_id, team=team, models={'research': 'test'})


def test_a_saved_recording_is_a_regression_test(state_dir, tmp_path):
    """How a developer turns a recorded run into a test: save it once, replay it in CI."""
    SIDE_EFFECTS.clear()
    result = build_team().run_sync('ship the secret client')
    fixture = Recording.from_store(build_team().store, result.run_id).save(tmp_path / 'run.json')

    report = replay_sync(fixture, team=build_team())  # today's code, yesterday's model answers
    assert report.ok, report.summary()
    report = replay_sync(fixture, team=build_team(word='client'))
    assert not report.ok and any(d.step == 'supervisor#guard:1' for d in report.divergences)


async def test_cli_replay(recorded, capsys, tmp_path):
    team, result = recorded

    def run(*argv: str) -> int:
        try:
            cli(list(argv))
        except SystemExit as e:
            return int(e.code or 0)
        return 0

    assert await anyio.to_thread.run_sync(lambda: run('replay', result.run_id, '--json')) == 0
    out = json.loads(capsys.readouterr().out)
    assert out['ok'] is True and out['live_model_calls'] == 0 and out['run_id'] == result.run_id

    assert (
        await anyio.to_thread.run_sync(
            lambda: run('replay', result.run_id[:8], '--fork-at', '1', '--model', 'coding=test')
        )
        == 0
    )
    shown = capsys.readouterr().out
    assert 'fork at supervisor#model:1' in shown and 'tokens' in shown and 'cost' in shown

    assert run('replay', result.run_id, '--model', 'coding') == 1
    assert (
        capsys.readouterr().err.strip()
        == "error: --model 'coding' must look like SPECIALIST=MODEL_ID (e.g. coding=local:smollm2)"
    )

    assert run('replay', result.run_id, '--save', str(tmp_path / 'r.json')) == 0
    assert 'saved the recording' in capsys.readouterr().out and (tmp_path / 'r.json').exists()
    assert await anyio.to_thread.run_sync(lambda: run('replay', str(tmp_path / 'missing.json'))) == 1
    assert 'missing.json' in capsys.readouterr().err


async def test_a_registry_routed_run_replays_and_a_fork_is_priced_by_the_registry(state_dir):
    from proctor import ModelRouter

    def worker(name: str) -> ScriptedModel:
        return ScriptedModel(lambda m: text(f'{name}: {last_user_prompt(m)}'), name=name)

    def boss(messages):
        results = tool_results(messages)
        return [delegate('analyst', 'size the market')] if not results else text(' | '.join(results))

    models = {
        'cheap': {
            'model': worker('cheap'),
            'usd_per_m_input': 0.15,
            'usd_per_m_output': 0.6,
            'data_classes': ['internal'],
        },
        'strong': {
            'model': worker('strong'),
            'usd_per_m_input': 3,
            'usd_per_m_output': 15,
            'data_classes': ['internal'],
        },
        'boss': {
            'model': ScriptedModel(boss, name='boss-llm'),
            'usd_per_m_input': 1,
            'usd_per_m_output': 2,
            'data_classes': ['internal'],
        },
    }
    router = ModelRouter(
        models, {'specialists': {'supervisor': {'preferred': 'boss'}, 'analyst': {'preferred': 'cheap'}}}
    )
    team = Team(Supervisor(), [Specialist('analyst', 'Analyse.')], router=router, name='replay-routed', durable=False)
    result = await team.run('go')
    assert result.output == 'cheap: size the market' and result.cost_usd > 0

    report = await replay(result.run_id, team=team)
    assert report.ok and report.live_model_calls == 0, report.summary()

    fork = await replay(result.run_id, team=team, fork_at=2, models={'analyst': 'strong'})  # a registry id
    d = fork.diff
    assert d.fork_output == 'strong: size the market' and d.unpriced_models == []
    assert d.original_cost_usd == pytest.approx(result.cost_usd)
    assert d.fork_cost_usd > d.original_cost_usd  # same tokens on a pricier model


APPLIED: list[str] = []


def apply_patch(patch: str) -> str:
    """Apply a patch (an output function with a side effect; a bad patch is sent back)."""
    if 'bad' in patch:
        from pydantic_ai import ModelRetry

        raise ModelRetry('that patch does not apply')
    APPLIED.append(patch)
    return f'applied {patch}'


async def test_output_functions_are_replayed_not_run_again(state_dir):
    from pydantic_ai import ToolOutput

    def coder(messages):
        return [tool_call('apply_patch', {'patch': 'bad patch' if turn_of(messages) == 0 else 'good patch'})]

    def boss(messages):
        results = tool_results(messages)
        return [delegate('coding', 'fix it')] if not results else text(results[0])

    team = Team(
        Supervisor(model=ScriptedModel(boss, name='boss')),
        [
            Specialist(
                'coding',
                'Code.',
                model=ScriptedModel(coder, name='coder'),
                output_type=ToolOutput(apply_patch, name='apply_patch'),
            )
        ],
        name='replay-output',
        durable=False,
    )
    APPLIED.clear()
    result = await team.run('go')
    assert result.output == 'applied good patch' and APPLIED == ['good patch']
    report = await replay(result.run_id, team=team)
    assert report.ok and report.output == 'applied good patch', report.summary()
    assert (
        APPLIED == ['good patch'] and report.live_model_calls == 0
    )  # the retry and the result came from the recording


async def test_replay_restores_the_workspace_the_run_started_with(state_dir, tmp_path):
    """Instructions that read the workspace see the files as the run found them, not as it left them."""
    from pydantic_ai.toolsets import FunctionToolset

    from proctor.tools import write_file

    class FileInInstructions(FunctionToolset):
        async def get_instructions(self, ctx):
            return 'The notes say: ' + (Path(ctx.deps.workspace) / 'notes.txt').read_text()

    ws = tmp_path / 'ws'
    ws.mkdir()
    (ws / 'notes.txt').write_text('version 1')

    def writer(messages):
        if not tool_results(messages):
            return [tool_call('write_file', {'path': 'notes.txt', 'content': 'version 2'})]
        return text('updated')

    def boss(messages):
        results = tool_results(messages)
        return [delegate('writer', 'update the notes')] if not results else text(results[0])

    team = Team(
        Supervisor(model=ScriptedModel(boss, name='boss')),
        [
            Specialist(
                'writer',
                'Write.',
                model=ScriptedModel(writer, name='w'),
                tools=[write_file],
                toolsets=[FileInInstructions([])],
            )
        ],
        name='replay-workspace',
        durable=False,
        workspace=ws,
    )
    result = await team.run('go')
    assert result.output == 'updated' and (ws / 'notes.txt').read_text() == 'version 2'
    report = await replay(result.run_id, team=team)
    assert report.ok, report.summary()
    # the writer's requests had 'version 1', then (after its write) 'version 2' in their instructions, again
    assert report.input_changes == []
    assert (ws / 'notes.txt').read_text() == 'version 2'  # and the real workspace was not touched


@pytest.mark.parametrize('decision', ['approve', 'reject'])
async def test_a_run_with_an_approval_replays_without_asking_anyone(state_dir, tmp_path, decision):
    from proctor.guardrails import ApprovalPolicy, ApprovalQueue, ApprovalRule
    from proctor.tools import write_file

    ws = tmp_path / 'ws'
    ws.mkdir()

    def writer(messages):
        if not tool_results(messages):
            return [tool_call('write_file', {'path': 'notes.md', 'content': 'hello'})]
        return text('writer saw: ' + tool_results(messages)[0])

    def boss(messages):
        results = tool_results(messages)
        return [delegate('writer', 'write the notes')] if not results else text(results[0])

    team = Team(
        Supervisor(model=ScriptedModel(boss, name='boss')),
        [Specialist('writer', 'Write.', model=ScriptedModel(writer, name='w'), tools=[write_file])],
        name=f'replay-approval-{decision}',
        durable=False,
        workspace=ws,
        guardrails=[ApprovalPolicy([ApprovalRule(tool='write_file')])],
    )
    queue = ApprovalQueue(team.store)
    result = await run_deciding_its_approval(team, queue, decision, timeout=30)
    assert ('wrote 5 characters' in result.output) == (decision == 'approve')
    (ws / 'notes.md').unlink(missing_ok=True)

    with anyio.fail_after(30):  # nobody is asked again: a replay that waited would time out here
        report = await replay(result.run_id, team=team)
    assert report.ok and report.output == result.output and report.live_model_calls == 0, report.summary()
    assert not (ws / 'notes.md').exists() and len(queue.list()) == 1


async def run_deciding_its_approval(team: Team, queue, decision: str, *, timeout: float):
    """Run `team` on 'go'; when its approval is pending, alice approves or rejects it. The result."""
    out = {}

    async def run() -> None:
        out['r'] = await team.run('go')

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(timeout):
            while not (pending := await anyio.to_thread.run_sync(lambda: queue.list(status='pending'))):
                await anyio.sleep(0.02)
        act = queue.approve if decision == 'approve' else queue.reject
        await anyio.to_thread.run_sync(
            lambda: act(pending[0].approval_id, decider='alice', roles=['operator'], reason='ok')
        )
    return out['r']


def build_approval_team(name: str = 'replay-approval-durable') -> Team:
    """A durable team whose writer's `write_file` waits for an operator (workspace: `$REPLAY_TEST_WS`)."""
    import os

    from proctor.guardrails import ApprovalPolicy, ApprovalRule
    from proctor.tools import write_file

    def writer(messages):
        if not tool_results(messages):
            return [tool_call('write_file', {'path': 'notes.md', 'content': 'hello'})]
        return text('writer saw: ' + tool_results(messages)[0])

    def boss(messages):
        results = tool_results(messages)
        return [delegate('writer', 'write the notes')] if not results else text(results[0])

    return Team(
        Supervisor(model=ScriptedModel(boss, name='boss')),
        [Specialist('writer', 'Write.', model=ScriptedModel(writer, name='w'), tools=[write_file])],
        name=name,
        durable=True,
        workspace=os.environ['REPLAY_TEST_WS'],
        factory=f'{HERE}:build_approval_team',
        guardrails=[ApprovalPolicy([ApprovalRule(tool='write_file')])],
    )


async def test_proctor_replay_of_a_durable_run_approved_at_a_checkpoint_completes_without_waiting(
    state_dir, tmp_path, monkeypatch
):
    from proctor.guardrails import ApprovalQueue

    ws = tmp_path / 'ws'
    ws.mkdir()
    monkeypatch.setenv('REPLAY_TEST_WS', str(ws))
    team = build_approval_team()
    queue = ApprovalQueue(team.store)
    result = await run_deciding_its_approval(team, queue, 'approve', timeout=60)
    assert result.status == 'succeeded' and 'wrote 5 characters' in result.output
    (ws / 'notes.md').unlink()
    flush_store(team.store)

    def replay_cli() -> tuple[int, str]:
        import contextlib
        import io

        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                cli(['replay', result.run_id, '--json'])  # the team is rebuilt from the recorded factory
        except SystemExit as e:
            return int(e.code or 0), buf.getvalue()
        return 0, buf.getvalue()

    with anyio.fail_after(60):  # a replay waiting for an operator would time out here
        code, printed = await anyio.to_thread.run_sync(replay_cli, abandon_on_cancel=True)
    assert code == 0, printed
    report = json.loads(printed)
    assert report['ok'] is True and report['status'] == 'succeeded' and report['output'] == result.output
    assert report['live_model_calls'] == 0 and report['replayed_tool_calls'] == 2  # the write and its delegation
    assert not (ws / 'notes.md').exists()  # the approved write is replayed from its recording, not done again
    assert [a.status for a in queue.list()] == ['approved']  # and nobody was asked again


async def test_replay_of_a_script_run_rebuilds_the_team_from_its_recording(state_dir):
    """A run started from a script records no factory: `proctor replay RUN` rebuilds its team from the
    recording (its agents, its tools as recorded stubs) and replays it with zero live calls."""
    SIDE_EFFECTS.clear()
    team = build_team(name='scripted')
    team.factory = None  # as a script's team: nothing to rebuild it from
    result = await team.run('ship the secret client', project='p')
    flush_store(team.store)

    def replay_cli() -> tuple[int, str]:
        import contextlib
        import io

        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                cli(['replay', result.run_id, '--json'])
        except SystemExit as e:
            return int(e.code or 0), buf.getvalue()
        return 0, buf.getvalue()

    code, printed = await anyio.to_thread.run_sync(replay_cli)
    report = json.loads(printed)
    assert code == 0 and report['ok'] is True, report
    assert report['output'] == result.output and report['divergences'] == []
    assert (report['replayed_model_calls'], report['live_model_calls']) == (7, 0)
    assert (report['replayed_tool_calls'], report['live_tool_calls']) == (5, 0)  # 3 tool calls, 2 delegations
    assert SIDE_EFFECTS == ['look up the *** api']  # the stubs never ran
    notes = ' '.join(report['notes'])
    assert 'rebuilt from the recording' in notes and 'recorded guardrail decisions were not compared' in notes


async def test_replay_without_a_factory_says_exactly_what_the_recording_lacks(state_dir):
    team = Team(
        Supervisor(model=ScriptedModel([delegate('coding', 'x'), text('done')])),
        [Specialist('coding', 'Code.', model=ScriptedModel(lambda m: text('ok')), output_type=TextOutput(make_output))],
        name='outputs',
        durable=False,
    )
    result = await team.run('go')
    assert result.output == 'done'
    lacks = "recorded no team factory, and its recording lacks the output function of agent 'supervisor>coding'"
    with pytest.raises(UserError, match=lacks):
        await replay(result.run_id)


def make_output(text: str) -> str:
    """An output function: code the recording cannot stand in for."""
    return text.upper()
