"""The core: a supervisor delegating to specialists, concurrently, durably, with usage rolled up."""

from __future__ import annotations

import threading

import anyio
import pytest

from proctor import Specialist, Supervisor, Team, UnknownModelError, UserError, WorkspaceError
from proctor.orchestrator import RunEvent, RunObserver
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_results

pytestmark = pytest.mark.anyio


class InFlight:
    """Counts model calls in flight at once (the benchmark's FakeLLM, for tests)."""

    def __init__(self) -> None:
        self.now = 0
        self.max = 0
        self.calls = 0
        self._lock = threading.Lock()

    async def call(self, latency: float, role: str = 'worker') -> None:
        with self._lock:
            self.calls += 1
            self.now += 1
            self.max = max(self.max, self.now)
        try:
            await anyio.sleep(latency)
        finally:
            with self._lock:
                self.now -= 1


def fan_out_team(k: int, *, latency: float = 0.0, durable: bool = False, counter: InFlight | None = None, **kw) -> Team:
    counter = counter or InFlight()
    workers = ('research', 'coding', 'review')

    async def supervisor(messages):
        await counter.call(latency, 'supervisor')
        results = tool_results(messages)
        if not results:
            return [delegate(workers[i % 3], f'subtask-{i}') for i in range(k)]
        return text('FINAL[' + '|'.join(sorted(results)) + ']')

    def worker(name: str) -> ScriptedModel:
        async def answer(messages):
            await counter.call(latency)
            return text(f'{name}:done:{last_user_prompt(messages)}')

        return ScriptedModel(answer, name=f'fake-{name}')

    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='fake-supervisor')),
        [Specialist(w, f'You are the {w} worker.', model=worker(w)) for w in workers],
        name=kw.pop('name', f'fanout{k}{"d" if durable else ""}'),
        durable=durable,
        **kw,
    )


def expected(k: int) -> str:
    workers = ('research', 'coding', 'review')
    return 'FINAL[' + '|'.join(sorted(f'{workers[i % 3]}:done:subtask-{i}' for i in range(k))) + ']'


@pytest.mark.parametrize('durable', [False, True], ids=['plain', 'durable'])
async def test_supervisor_delegates_and_answers_from_results(state_dir, durable):
    team = fan_out_team(3, durable=durable)
    result = await team.run('Build feature X', project='p1', data_class='internal')

    assert result.output == expected(3)
    assert sorted((d.specialist, d.subtask, d.output, d.status) for d in result.delegations) == [
        ('coding', 'subtask-1', 'coding:done:subtask-1', 'succeeded'),
        ('research', 'subtask-0', 'research:done:subtask-0', 'succeeded'),
        ('review', 'subtask-2', 'review:done:subtask-2', 'succeeded'),
    ]
    assert {d.agent_path for d in result.delegations} == {
        'supervisor>research',
        'supervisor>coding',
        'supervisor>review',
    }
    assert {d.model_id for d in result.delegations} == {'fake-research', 'fake-coding', 'fake-review'}
    # Sub-agent usage rolls up into the run: supervisor (2 requests) + 3 workers (1 each).
    assert result.usage.requests == 5
    assert result.usage.input_tokens == sum(d.usage.input_tokens for d in result.delegations) + (
        result.usage.input_tokens - sum(d.usage.input_tokens for d in result.delegations)
    )
    assert all(d.usage.requests == 1 and d.usage.input_tokens > 0 for d in result.delegations)
    rec = team.get_run(result.run_id)
    assert rec.status == 'succeeded' and rec.project == 'p1' and rec.data_class == 'internal'
    assert rec.requests == 5 and rec.output == expected(3)
    assert (state_dir / 'proctor.db').exists()


async def test_twenty_delegations_in_one_turn_run_concurrently(state_dir):
    counter = InFlight()
    team = fan_out_team(20, latency=0.2, counter=counter)
    result = await team.run('Build feature X')
    assert result.output == expected(20)
    assert counter.calls == 22  # K + 2: no extra calls, no retries
    assert counter.max == 20  # all 20 worker calls were in flight at once


async def test_durable_delegations_are_all_in_flight_at_once(state_dir):
    """Each worker call waits until all 20 have started: serialized delegations would never finish."""
    arrived = 0
    everyone = anyio.Event()

    class Barrier(InFlight):
        async def call(self, latency: float, role: str = 'worker') -> None:
            nonlocal arrived
            if role == 'worker':
                arrived += 1
                if arrived == 20:
                    everyone.set()
                with anyio.fail_after(60):
                    await everyone.wait()

    team = fan_out_team(20, durable=True, counter=Barrier())
    result = await team.run('Build feature X')
    assert result.output == expected(20)
    assert arrived == 20 and len(result.delegations) == 20


async def test_a_durable_team_without_recording_keeps_only_its_model_responses(state_dir):
    """`record=False`: no replay recording, audit or run records, but a durable run still checkpoints
    its model responses (what a recovery is served), as DBOS recorded its steps' outputs before."""
    import sqlalchemy as sa

    team = fan_out_team(3, durable=True, record=False, name='norec')
    result = await team.run('Build feature X')
    assert result.output == expected(3)
    with team.store.engine.connect() as c:
        rows = c.execute(
            sa.text('SELECT step, kind FROM proctor_recordings WHERE run_id = :r'), {'r': result.run_id}
        ).all()
    steps = sorted(step.rpartition('#')[0].partition(':')[0] + '#' + step.rpartition('#')[2] for step, _ in rows)
    assert {kind for _, kind in rows} == {'model'}
    assert steps == [
        'supervisor#model:1',
        'supervisor#model:2',
        'supervisor>coding#model:1',
        'supervisor>research#model:1',
        'supervisor>review#model:1',
    ]


async def test_run_sync_and_events(state_dir):
    seen: list[tuple[str, str]] = []

    class Recorder(RunObserver):
        def on_event(self, event: RunEvent) -> None:
            seen.append((event.kind, event.agent_path))

    team = fan_out_team(1, observers=[Recorder()])
    result = await anyio.to_thread.run_sync(lambda: team.run_sync('go'))
    assert result.output == expected(1)
    assert seen == [
        ('run_started', 'supervisor'),
        ('delegation_started', 'supervisor>research'),
        ('delegation_finished', 'supervisor>research'),
        ('run_finished', 'supervisor'),
    ]


async def test_failing_specialist_fails_the_run_and_is_recorded(state_dir):
    def broken(messages):
        raise RuntimeError('worker exploded')

    team = Team(
        Supervisor(model=ScriptedModel([[delegate('research', 'x')], text('unreachable')])),
        [Specialist('research', 'Research.', model=ScriptedModel(broken))],
        name='broken',
        durable=False,
    )
    with pytest.raises(RuntimeError, match='worker exploded'):
        await team.run('go')
    [rec] = team.list_runs()
    assert rec.status == 'failed' and 'worker exploded' in (rec.error or '')
    [d] = team.get_run(rec.run_id).delegations
    assert d.status == 'failed' and 'worker exploded' in (d.error or '')


@pytest.mark.parametrize(
    'task,kwargs,message',
    [
        ('', {}, 'task is empty'),
        ('   ', {}, 'task is empty'),
        ('x' * 100_001, {}, 'over the limit'),
        ('ok', {'data_class': 'secret'}, "unknown data class 'secret'"),
        ('ok', {'project': ''}, 'project must be'),
    ],
)
async def test_bad_run_input_is_a_user_error_and_records_nothing(state_dir, task, kwargs, message):
    team = fan_out_team(1)
    with pytest.raises(UserError, match=message):
        await team.run(task, **kwargs)
    assert team.list_runs() == []


def test_bad_team_definitions_name_the_culprit(state_dir, tmp_path):
    with pytest.raises(UnknownModelError, match="unknown model 'nosuchprovider'"):
        Team(Supervisor(model='nosuchprovider'), [Specialist('a', 'x', model='test')], name='bad1')
    with pytest.raises(UnknownModelError, match="'local:nope'"):
        Team(Supervisor(model='test'), [Specialist('a', 'x', model='local:nope')], name='bad2')
    with pytest.raises(WorkspaceError, match='does not exist'):
        Team(Supervisor(model='test'), [Specialist('a', 'x', model='test')], workspace=tmp_path / 'missing')
    with pytest.raises(UserError, match='duplicate agent names'):
        Team(Supervisor(model='test'), [Specialist('a', 'x', model='test'), Specialist('a', 'y', model='test')])
    with pytest.raises(UserError, match='specialist name'):
        Specialist('Bad Name', 'x')
    with pytest.raises(UserError, match='has no model'):
        Team(Supervisor(model='test'), [Specialist('a', 'x')], name='bad3')


def test_unwritable_state_dir_is_a_clear_error(tmp_path):
    from proctor.exceptions import StateDirError

    blocker = tmp_path / 'file'
    blocker.write_text('not a dir')
    with pytest.raises(StateDirError, match='cannot create state dir'):
        fan_out_team(1, state_dir=blocker / 'state')


async def test_rebuilding_a_durable_team_in_one_process_is_quiet_and_runs_the_new_build(state_dir):
    """Tests and notebooks build the same team again: no DBOS 'Duplicate registration' warnings,
    and each run uses the team it was started on."""
    import logging

    class Capture(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    capture = Capture()
    logging.getLogger('dbos').addHandler(capture)  # DBOS's logger does not propagate to the root
    try:
        first = fan_out_team(2, durable=True, name='rebuilt')
        assert (await first.run('Build feature X')).output == expected(2)
        counter = InFlight()
        second = fan_out_team(3, durable=True, name='rebuilt', counter=counter)
        assert (await second.run('Build feature X')).output == expected(3)
        assert counter.calls == 5  # the second build's models served its run
        third = fan_out_team(1, durable=True, name='rebuilt')
        assert (await third.run('Build feature X')).output == expected(1)
    finally:
        logging.getLogger('dbos').removeHandler(capture)
    assert [m for m in capture.messages if 'Duplicate registration' in m] == []


def test_a_known_model_without_its_api_key_is_reported_as_unavailable_not_unknown(monkeypatch):
    from proctor.exceptions import ModelUnavailableError
    from proctor.orchestrator import build_model

    monkeypatch.delenv('OPENAI_API_KEY', raising=False)
    with pytest.raises(
        ModelUnavailableError, match=r"model 'openai:gpt-4o-mini' is not available here: Set the `OPENAI_API_KEY`"
    ):
        build_model('openai:gpt-4o-mini')
