"""The demo (`make demo`): the live tree it shows, and the feature team end to end on the real embedded model."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from pydantic_ai.messages import ModelResponse
from pydantic_ai.usage import RequestUsage
from rich.console import Console

from proctor import Review, Specialist, Supervisor, Team
from proctor.exceptions import LocalModelUnavailable
from proctor.orchestrator import ModelCall, RunDeps, RunEvent
from proctor.testing import ScriptedModel, delegate, text, tool_results
from proctor.tracing import LiveTree

RUN = 'abcdef0123456789'


def _events() -> list[RunEvent]:
    return [
        RunEvent('run_started', RUN, 'supervisor', 'supervisor', subtask='Add farewell()', model_id='local:smollm2'),
        RunEvent(
            'delegation_started', RUN, 'supervisor>research', 'research', subtask='Read the README', model_id='m1'
        ),
        RunEvent('delegation_started', RUN, 'supervisor>coding', 'coding', subtask='Write farewell', model_id='m2'),
        RunEvent(
            'delegation_finished',
            RUN,
            'supervisor>research',
            'research',
            subtask='Read the README',
            model_id='m1',
            output='It asks for farewell.',
            input_tokens=120,
            output_tokens=30,
            elapsed_s=2.5,
        ),
        RunEvent(
            'delegation_failed',
            RUN,
            'supervisor>coding',
            'coding',
            subtask='Write farewell',
            model_id='m2',
            error='RunError: tests failed',
            elapsed_s=4.0,
        ),
        RunEvent(
            'run_finished',
            RUN,
            'supervisor',
            'supervisor',
            output='Done.',
            model_id='local:smollm2',
            input_tokens=300,
            output_tokens=50,
            elapsed_s=7.25,
        ),
    ]


def _plain_tree() -> tuple[LiveTree, io.StringIO]:
    out = io.StringIO()
    return LiveTree(Console(file=out, force_terminal=False, width=200)), out


def test_live_tree_prints_one_plain_line_per_event_when_not_a_terminal():
    tree, out = _plain_tree()
    assert tree.live is False
    for e in _events():
        tree.on_event(e)
    assert out.getvalue().splitlines() == [
        'run abcdef01 started: supervisor on local:smollm2; task: Add farewell()',
        '  supervisor>research started on m1: Read the README',
        '  supervisor>coding started on m2: Write farewell',
        '  supervisor>research done in 2.5s, 120+30 tokens: It asks for farewell.',
        '  supervisor>coding failed in 4.0s, 0+0 tokens: RunError: tests failed',
        'run abcdef01 done in 7.2s, tokens 420+80',
    ]


def test_live_tree_ignores_events_repeated_by_recovery():
    tree, out = _plain_tree()
    events = _events()
    for e in events[:4] + events[:4] + events[4:] + events[4:]:
        tree.on_event(e)
    assert len(out.getvalue().splitlines()) == 6


def test_live_tree_counts_tokens_of_running_agents_then_takes_the_finish_totals():
    tree, _ = _plain_tree()
    for e in _events()[:3]:
        tree.on_event(e)
    deps = RunDeps(
        run_id=RUN,
        team='t',
        project='p',
        data_class='internal',
        agent_path='supervisor>research',
        specialist='research',
    )
    call = ModelCall(
        deps=deps, key='k', model_id='m1', model_name='m1', system='local', messages=[], model_settings=None
    )
    response = ModelResponse(parts=[], usage=RequestUsage(input_tokens=40, output_tokens=9))
    import anyio

    anyio.run(tree.after_model_call, call, response)
    anyio.run(tree.after_model_call, call, response)
    frame = _render(tree)
    assert 'research  m1  running  80+18 tok' in frame and 'Read the README' in frame
    tree.on_event(_events()[3])
    assert 'research  m1  done  120+30 tok  2.5s' in _render(tree)


def _render(tree: LiveTree) -> str:
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    console.print(tree.render())
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_live_tree_on_a_terminal_redraws_a_tree_and_stops_when_the_run_ends():
    out = io.StringIO()
    tree = LiveTree(Console(file=out, force_terminal=True, width=120), refresh_per_second=20)
    assert tree.live is True
    events = _events()
    for e in events[:-1]:
        tree.on_event(e)
    assert tree._live is not None  # redrawing while the run is going
    frame = _render(tree)
    assert 'run abcdef01' in frame
    assert 'supervisor  local:smollm2  running' in frame
    assert '├── research  m1  done  120+30 tok  2.5s' in frame and 'It asks for farewell.' in frame
    assert '└── coding  m2  failed  0+0 tok  4.0s' in frame and 'RunError: tests failed' in frame
    tree.on_event(events[-1])
    assert tree._live is None
    assert 'done' in out.getvalue() and '\x1b[' in out.getvalue()  # drawn with terminal control codes


def test_live_tree_follows_a_real_team_run(state_dir):
    async def supervisor(messages):
        if not tool_results(messages):
            return [delegate('research', 'look'), delegate('coding', 'write')]
        return text('all done')

    tree, out = _plain_tree()
    team = Team(
        Supervisor(model=ScriptedModel(supervisor, name='sup')),
        [
            Specialist(n, f'You are {n}.', model=ScriptedModel([text(f'{n} ok')], name=n))
            for n in ('research', 'coding')
        ],
        name='live-tree-team',
        durable=False,
        observers=[tree],
    )
    result = team.run_sync('Ship it')
    lines = out.getvalue().splitlines()
    assert lines[0] == f'run {result.run_id[:8]} started: supervisor on sup; task: Ship it'
    assert sorted(ln.split(' in ')[0] for ln in lines[1:-1]) == [
        '  supervisor>coding done',
        '  supervisor>coding started on coding: write',
        '  supervisor>research done',
        '  supervisor>research started on research: look',
    ]
    assert lines[-1].startswith(f'run {result.run_id[:8]} done in ')


# ------------------------------------------------------------------ the demo itself, on the real model


def _require_local_model() -> None:
    from proctor.orchestrator import build_model

    try:
        build_model('local:smollm2')
    except LocalModelUnavailable as e:
        if os.environ.get('PROCTOR_REQUIRE_LOCAL_MODEL') == '1':
            pytest.fail(f'PROCTOR_REQUIRE_LOCAL_MODEL=1 but the embedded model is unavailable: {e}')
        pytest.skip(f'embedded model unavailable: {e}')


@pytest.mark.local_model
def test_feature_team_factory_rebuilds_the_team_in_another_process_style(tmp_path, monkeypatch):
    _require_local_model()
    from proctor.examples import feature_team
    from proctor.orchestrator._live import load_factory

    monkeypatch.setenv('PROCTOR_STATE_DIR', str(tmp_path))  # what `proctor --state-dir DIR resume RUN` sets
    team = load_factory(f'{Path(feature_team.__file__).resolve()}:build_team')
    assert team.name == 'feature_team' and sorted(team.specialists) == ['coding', 'research', 'review']
    assert team.workspace is not None and team.workspace.root == (tmp_path / 'workspaces' / 'feature_team').resolve()
    assert (team.workspace.root / 'greeter.py').read_text() == (feature_team.SAMPLE / 'greeter.py').read_text()
    assert team.store.state_dir == tmp_path


@pytest.mark.local_model
@pytest.mark.timeout(300)  # a 2-core machine shared with other work can be several times slower than alone
def test_feature_team_demo_runs_end_to_end_on_the_embedded_model(tmp_path, monkeypatch, capsys):
    _require_local_model()
    from proctor.examples import feature_team

    state = tmp_path / 'state'
    monkeypatch.setenv('PROCTOR_STATE_DIR', str(state))

    assert feature_team.main(['--state-dir', str(state)]) == 0

    printed = capsys.readouterr().out
    from proctor.orchestrator import RunRecords
    from proctor.state._store import StateStore

    runs = RunRecords(StateStore(state)).list()
    assert len(runs) == 1
    run = RunRecords(StateStore(state)).get(runs[0].run_id)
    assert (
        run.status == 'succeeded' and run.team == 'feature_team' and run.factory.endswith('feature_team.py:build_team')
    )
    assert [(d.specialist, d.status, d.model_id) for d in run.delegations] == [
        ('research', 'succeeded', 'local:smollm2'),
        ('coding', 'succeeded', 'local:smollm2'),
        ('review', 'succeeded', 'local:smollm2'),
    ]
    assert all(d.input_tokens > 0 and d.output_tokens > 0 for d in run.delegations)
    assert run.input_tokens > sum(d.input_tokens for d in run.delegations)  # the supervisor's own calls count too
    coding, review = run.delegations[1].output, Review.model_validate(run.delegations[2].output)
    assert coding.startswith(('Appended to greeter.py:', 'no change made:'))
    assert review.verdict in ('approve', 'request_changes')
    # The live tree (plain lines: pytest's stdout is not a terminal) and the closing summary.
    assert f'run {run.run_id[:8]} started: supervisor on local:smollm2' in printed
    assert printed.count('started on local:smollm2') == 3
    assert f'run id      {run.run_id}' in printed and f'state       {state}' in printed and 'tokens/s' in printed
    # The shipped sample project is untouched: the team worked on its copy in the state dir.
    shipped = (feature_team.SAMPLE / 'greeter.py').read_text()
    assert 'farewell' not in shipped and (state / 'workspaces' / 'feature_team' / 'greeter.py').exists()
