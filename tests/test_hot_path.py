"""What the hot path's shortcuts must keep: the input hash of a conversation built from each message's
cached JSON equals the hash of the whole list's JSON (recordings made before stay comparable), and a
recorded response spliced in as JSON reads back as the response."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic_ai import RunContext
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest, ModelResponse, TextPart, ToolCallPart

from proctor.tracing._recording import _VOLATILE, load_response, messages_hash


def _whole_list_hash(messages) -> str:
    return hashlib.sha256(_VOLATILE.sub(b'', ModelMessagesTypeAdapter.dump_json(messages))).hexdigest()


def _one_worker_team(sup, name: str, *, answer: str = 'worked'):
    """A team of scripted models, not durable: supervisor `sup`, one specialist `w` answering `answer`."""
    from proctor import Specialist, Supervisor, Team
    from proctor.testing import ScriptedModel, text

    return Team(
        Supervisor(model=ScriptedModel(sup, name='s')),
        [Specialist('w', 'Work.', model=ScriptedModel(lambda m: text(answer), name='w'))],
        name=name,
        durable=False,
    )


def test_incremental_input_hash_is_the_whole_list_hash():
    history = [
        ModelRequest.user_text_prompt('build "it", with a timestamp":"x" inside'),
        ModelResponse(parts=[ToolCallPart('lookup', {'q': 'é'}, tool_call_id='c1')], model_name='m'),
        ModelRequest.user_text_prompt('next'),
        ModelResponse(parts=[TextPart('done')], model_name='m'),
    ]
    cache: dict = {}  # one agent run's: each message serialised once
    for n in range(len(history) + 1):
        assert messages_hash(history[:n], cache) == _whole_list_hash(history[:n])
    assert len(cache) == len(history)
    assert messages_hash(history, cache) == messages_hash(history)  # from the cache, and without one
    history[3].parts = [TextPart('changed')]  # a new parts list is serialised again
    assert messages_hash(history, cache) == _whole_list_hash(history)


@pytest.mark.anyio
async def test_an_agent_runs_message_cache_goes_with_the_run(state_dir):
    import gc

    from proctor.testing import delegate, text, tool_results
    from proctor.tracing._recording import _run_fragments

    seen: list[int] = []

    def sup(messages):
        if not tool_results(messages):
            return [delegate('w', 'go')]
        # the supervisor's first request was hashed (recorder, audit log) through its run's cache
        seen.extend(len(v) for d, v in list(_run_fragments.items()) if d.agent_path == 'supervisor')
        return text('ok')

    team = _one_worker_team(sup, 'fragments')
    result = await team.run('do it')
    assert result.output == 'ok'
    assert seen and all(n >= 1 for n in seen)
    gc.collect()
    # once the run has ended no cache holds its messages
    assert not [d for d in list(_run_fragments.keys()) if d.run_id == result.run_id]


@pytest.mark.anyio
async def test_a_recorded_input_hash_is_that_of_the_conversation_the_model_saw(state_dir):
    """The supervisor's second request holds its first response as pydantic-ai stamped it after the
    call (model, run and conversation ids): the recorded input hashes are the whole lists'."""
    from proctor.testing import delegate, text, tool_results
    from proctor.tracing import Recording

    asked: list[list] = []

    def sup(messages):
        asked.append(list(messages))
        return text('ok') if tool_results(messages) else [delegate('w', 'go'), delegate('w', 'again')]

    team = _one_worker_team(sup, 'hashes')
    result = await team.run('do it')
    rec = Recording.from_store(team.store, result.run_id)
    hashes = [
        s.payload['input_hash'] for s in rec.steps if s.kind == 'model' and s.payload['agent_path'] == 'supervisor'
    ]
    assert len(asked) == 2 and any(isinstance(m, ModelResponse) for m in asked[1])
    assert hashes == [_whole_list_hash(m) for m in asked]


@pytest.mark.anyio
async def test_recorded_response_json_reads_back(state_dir):
    from proctor.testing import delegate, text, tool_results
    from proctor.tracing import Recording

    def sup(messages):
        return text('ok: ' + tool_results(messages)[0]) if tool_results(messages) else [delegate('w', 'go')]

    team = _one_worker_team(sup, 'hot-path', answer='wörked')
    result = await team.run('do it')
    rec = Recording.from_store(team.store, result.run_id)
    models = [s for s in rec.steps if s.kind == 'model']
    assert [s.response().parts[0].content for s in models if isinstance(s.response().parts[0], TextPart)] == [
        'wörked',
        'ok: wörked',
    ]
    for s in models:
        assert s.payload['agent_path'] and s.payload['input_hash'] and json.dumps(s.payload)
        assert load_response(s.payload['response']).model_name in ('s', 'w')


@pytest.mark.anyio
async def test_a_fan_out_is_stored_before_any_branch_runs_in_one_transaction(state_dir):
    """The durable checkpoints a fan-out shares: the supervisor's delegating response and every
    delegation's start row are in the database before any delegated model is called (what a crash
    then leaves is resumable and `proctor runs show` names what was running), and the K starts of
    one response are stored together with it, not in K + 1 transactions."""
    import sqlite3

    from sqlalchemy import event

    from proctor import Specialist, Supervisor, Team
    from proctor.testing import ScriptedModel, delegate, text, tool_results

    workers = ('alpha', 'beta', 'gamma')
    seen: dict[str, tuple[list[tuple[str, str]], int]] = {}

    def sup(messages):
        results = tool_results(messages)
        return text(' | '.join(sorted(results))) if results else [delegate(w, f'part {w}') for w in workers]

    def worker(name):
        def answer(messages):
            with sqlite3.connect(state_dir / 'proctor.db') as db:  # what another process would see now
                rows = db.execute(
                    "SELECT specialist, status FROM proctor_delegations WHERE run_id = 'fan-1' ORDER BY specialist"
                ).fetchall()
                (asked,) = db.execute(
                    "SELECT count(*) FROM proctor_recordings WHERE run_id = 'fan-1' AND step = 'supervisor#model:1'"
                ).fetchone()
            seen[name] = (rows, asked)
            return text(f'{name} done')

        return answer

    team = Team(
        Supervisor(model=ScriptedModel(sup, name='sup')),
        [Specialist(w, f'The {w}.', model=ScriptedModel(worker(w), name=w)) for w in workers],
        name='fan-team',
    )
    commits: list[int] = []
    await team.run('warm up')  # launches DBOS, migrates the store

    def count(conn) -> None:
        commits.append(1)

    event.listen(team.store.engine, 'commit', count)
    try:
        result = await team.run('split it', run_id='fan-1')
    finally:
        event.remove(team.store.engine, 'commit', count)
    assert result.output == 'alpha done | beta done | gamma done'
    started = [(w, 'running') for w in workers]
    assert seen == {w: (started, 1) for w in workers}
    # the run row; the delegating response with the three starts; the run's end (with the finishes)
    assert len(commits) <= 3, commits


def test_a_batch_of_delegation_starts_numbers_new_rows_and_keeps_recorded_ones(state_dir):
    """The starts one flush writes together (a fan-out's) get the run's next `seq` in order, and a
    start of a delegation recorded already (a resumed run re-entering it) changes nothing."""
    from proctor.state._records import RunRecords
    from proctor.state._store import StateStore
    from proctor.state._writer import flusher

    records = RunRecords(StateStore(state_dir))
    records.create_run(
        run_id='batch-1',
        team='t',
        project='p',
        data_class='internal',
        task='go',
        factory=None,
        workspace=None,
        durable=True,
    )

    def start(name: str, subtask: str) -> None:
        records.queue_start_delegation(
            delegation_id=f'batch-1>{name}:c',
            run_id='batch-1',
            agent_path=f'supervisor>{name}',
            specialist=name,
            subtask=subtask,
            model_id='m',
            route_reason='only',
        )

    records.start_delegation(
        delegation_id='batch-1>alpha:c',
        run_id='batch-1',
        agent_path='supervisor>alpha',
        specialist='alpha',
        subtask='first',
        model_id='m',
        route_reason='only',
    )
    records.queue_finish_delegation('batch-1>alpha:c', status='succeeded', output='a done')
    for name, subtask in [('beta', 'b'), ('alpha', 'again'), ('gamma', 'g'), ('beta', 'b again')]:
        start(name, subtask)
    flusher.flush_store(records.store)
    rows = [(d.seq, d.specialist, d.subtask, d.status) for d in records.get('batch-1').delegations]
    assert rows == [(0, 'alpha', 'first', 'succeeded'), (1, 'beta', 'b', 'running'), (2, 'gamma', 'g', 'running')]


@pytest.mark.anyio
async def test_the_observer_is_the_agents_tool_search_and_deferred_tools_are_still_found(state_dir):
    """pydantic-ai gives every agent without a `ToolSearch` a default one; the observer is that one
    (so a run copies the context for one capability fewer at each hook), and tool discovery works
    through it: a `defer_loading` tool is hidden from the model until a `search_tools` call finds it."""
    from pydantic_ai import Tool
    from pydantic_ai.capabilities import ToolSearch

    from proctor import Specialist, Supervisor, Team
    from proctor.orchestrator._observers import ObserverCapability
    from proctor.testing import ScriptedModel, delegate, text, tool_call, tool_results

    seen: dict[str, list] = {}

    def inventory(ctx: RunContext) -> str:
        """What the agent's run holds."""
        seen['capabilities'] = list(ctx.capabilities.values())
        return 'listed'

    def parcel_weight(parcel: str) -> str:
        """Weigh a parcel in the warehouse."""
        return f'{parcel} weighs 12 kg'

    offered: list[set[str]] = []

    def worker(messages, info):
        offered.append({t.name for t in info.function_tools})
        step = len(offered)
        if step == 1:
            return tool_call('inventory')
        if step == 2:
            return tool_call('search_tools', {'queries': ['parcel weight']})
        if step == 3:
            return tool_call('parcel_weight', {'parcel': 'P7'})
        return text(tool_results(messages, 'parcel_weight')[-1])

    sup = ScriptedModel(lambda m: text(tool_results(m)[-1]) if tool_results(m) else delegate('w', 'weigh P7'), name='s')
    team = Team(
        Supervisor(model=sup),
        [
            Specialist(
                'w',
                'Weigh parcels.',
                model=ScriptedModel(worker, name='w'),
                tools=[inventory, Tool(parcel_weight, defer_loading=True)],
            )
        ],
        name='toolsearch',
        durable=False,
    )
    result = await team.run('weigh parcel P7')

    assert result.output == 'P7 weighs 12 kg'
    searches = [c for c in seen['capabilities'] if isinstance(c, ToolSearch)]
    assert len(searches) == 1 and isinstance(searches[0], ObserverCapability)
    # hidden from the model until its search found it
    assert ['parcel_weight' in names for names in offered] == [False, False, True, True]


async def _tasks_started(run) -> int:
    """How many asyncio tasks `await run()` starts (counted by a task factory on the running loop)."""
    import asyncio

    loop = asyncio.get_running_loop()
    started = 0

    def factory(loop, coro, **kw):
        nonlocal started
        started += 1
        return asyncio.Task(coro, loop=loop, **kw)

    loop.set_task_factory(factory)
    try:
        await run()
    finally:
        loop.set_task_factory(None)
    return started


@pytest.mark.anyio
async def test_a_team_run_starts_no_more_tasks_than_the_same_bare_pydantic_ai_agents(state_dir):
    """The supervisor's delegations sit in its own toolset, beside its tools: with a second toolset
    pydantic-ai gathers over both in a task group at each step (14 more tasks a run than bare)."""
    from pydantic_ai import Agent
    from pydantic_ai.models.function import FunctionModel

    from proctor import Specialist, Supervisor, Team
    from proctor.testing import ScriptedModel, delegate, text, tool_call, tool_results

    def sup_script(messages):
        done = tool_results(messages)
        return text(done[-1]) if done else delegate('w', 'do it')

    async def bare_sup(messages, info):
        done = tool_results(messages)
        return text(done[-1]) if done else ModelResponse(parts=[tool_call('delegate_to_w', {'subtask': 'do it'})])

    async def bare_worker(messages, info):
        return text('worked')

    worker = Agent(FunctionModel(bare_worker, model_name='w'), name='w')
    bare = Agent(FunctionModel(bare_sup, model_name='s'), name='s')

    @bare.tool_plain
    async def delegate_to_w(subtask: str) -> str:
        return (await worker.run(subtask)).output

    def note(ctx: RunContext, line: str) -> str:
        """Write a note."""
        return 'noted'

    team = Team(
        Supervisor(model=ScriptedModel(sup_script, name='s'), tools=[note]),
        [Specialist('w', 'Work.', model=ScriptedModel(lambda m: text('worked'), name='w'))],
        name='tasks',
        durable=False,
    )
    for _ in range(2):  # warm: first-run work (schemas, caches) is not per-run work
        assert (await bare.run('go')).output == 'worked'
        assert (await team.run('go')).output == 'worked'

    async def bare_run():
        await bare.run('go')

    async def team_run():
        await team.run('go')

    assert await _tasks_started(team_run) <= await _tasks_started(bare_run)
