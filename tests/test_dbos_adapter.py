"""`proctor.state._dbos` is the one module that reaches into DBOS's private API. These tests pin the DBOS
version it was checked against and call each private-API function, so a DBOS upgrade that renames or
changes one fails here, by name, instead of deep inside a crash recovery."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from proctor.state import _dbos
from proctor.state._store import StateStore

#: The DBOS minor version the private-API uses in `state/_dbos.py` were read against. After upgrading
#: DBOS, re-read each use listed in that module's docstring, then bump this.
CHECKED_AGAINST = '3.4'


def test_dbos_is_the_version_the_adapter_was_checked_against():
    installed = version('dbos')
    assert installed.startswith(CHECKED_AGAINST + '.'), (
        f'DBOS {installed} is installed; state/_dbos.py was checked against {CHECKED_AGAINST}.x: '
        're-check its private-API uses and update CHECKED_AGAINST'
    )


def test_an_in_process_queue_is_registered_replaced_paused_and_dropped():
    name = 'proctor-test.adapter-queue'
    try:
        q = _dbos.register_queue(name, worker_concurrency=3, polling_interval_sec=0.5)
        assert (q.name, q.worker_concurrency) == (name, 3)
        again = _dbos.register_queue(name, worker_concurrency=5)
        assert again is not q and again.worker_concurrency == 5  # declaring it again replaces it
        _dbos.pause_queue(again)
        assert again.worker_concurrency == 0  # a draining worker dequeues nothing more
    finally:
        _dbos.drop_queue(name)
    fresh = _dbos.register_queue(name, worker_concurrency=1)
    try:
        assert fresh.worker_concurrency == 1
    finally:
        _dbos.drop_queue(name)


def test_the_cancellation_dbos_raises_into_a_workflow_is_its_own_error_class():
    cancelled = _dbos.workflow_cancelled()
    assert issubclass(cancelled, BaseException) and cancelled.__name__ == 'DBOSWorkflowCancelledError'


@pytest.fixture
def launched(tmp_path):
    from proctor.orchestrator._workflow import launch

    store = StateStore(tmp_path / 'state')
    launch(store)
    yield store
    _dbos.shutdown()


def test_recovery_calls_answer_for_an_unknown_executor_and_workflow(launched):
    # what a worker taking over a dead one calls: nothing pending for an executor that never ran,
    # and a workflow id DBOS does not hold is not re-enqueued
    assert _dbos.pending_workflows('proctor-nobody-0-deadbeef') == []
    assert _dbos.reenqueue('no-such-workflow', ['proctor-nobody-0-deadbeef'], 'proctor-test.q') is False
    assert _dbos.launched_store() is launched and _dbos.launched_url() == launched.dbos_url


def _set_owner(store: StateStore, workflow_id: str, owner: str | None) -> str | None:
    """Set the DBOS owner token of a workflow as a take-over would (returns the one it had)."""
    import sqlalchemy as sa

    eng = sa.create_engine(store.dbos_url)
    try:
        with eng.begin() as c:
            had = c.execute(
                sa.text('SELECT owner_xid FROM workflow_status WHERE workflow_uuid = :w'), {'w': workflow_id}
            ).scalar()
            c.execute(
                sa.text('UPDATE workflow_status SET owner_xid = :o WHERE workflow_uuid = :w'),
                {'o': owner, 'w': workflow_id},
            )
        return had
    finally:
        eng.dispose()


def _fence_outcome() -> str:
    try:
        with _dbos.owner_fence():
            return 'held'
    except _dbos.ownership_lost():
        return 'refused'


_fence_seen: list[str] = []


def _register_fence_workflow():
    from dbos import DBOS

    @DBOS.workflow(name='proctor-test.fence')
    async def fence_workflow(steal: bool) -> str:
        store = _dbos.launched_store()
        assert store is not None and DBOS.workflow_id is not None
        wid = DBOS.workflow_id
        mine = _set_owner(store, wid, 'another-execution') if steal else None
        try:
            _fence_seen.append(_fence_outcome())
        finally:
            if steal:
                _set_owner(store, wid, mine)  # give it back, so the workflow can record its outcome
        return _fence_seen[-1]

    return fence_workflow


_fence_workflow = _register_fence_workflow()  # registered before DBOS launches


@pytest.mark.anyio
async def test_the_fence_holds_for_the_owner_and_refuses_a_stale_execution(launched):
    from dbos import DBOS, SetWorkflowID

    assert _fence_outcome() == 'held'  # outside any workflow: nothing to hold
    with SetWorkflowID('fence-owned'):
        assert await (await DBOS.start_workflow_async(_fence_workflow, False)).get_result() == 'held'
    with SetWorkflowID('fence-stolen'):
        handle = await DBOS.start_workflow_async(_fence_workflow, True)
        assert await handle.get_result() == 'refused'
    assert _fence_seen == ['held', 'refused']
    assert _dbos.lost_ownership(_dbos.ownership_lost()('fence-stolen'))


def _register_bookkeeping_workflow():
    from dbos import DBOS

    @DBOS.step(name='proctor-test.double')
    async def double(x: int) -> int:
        return 2 * x

    @DBOS.workflow(name='proctor-test.bookkeeping')
    async def bookkeeping(x: int) -> int:
        return await double(x) + 1

    return bookkeeping


_bookkeeping_workflow = _register_bookkeeping_workflow()


@pytest.mark.anyio
async def test_on_sqlite_dbos_records_workflows_and_steps_inline_and_durably(launched, monkeypatch):
    # `dbos._outcome`'s `asyncio` is the adapter's stand-in: the bookkeeping DBOS wraps around each
    # async workflow and step (record its start, look for a recorded result, record its output) runs
    # on the event loop, no thread hop, and is stored all the same.
    import asyncio
    import traceback

    import dbos._outcome
    from dbos import DBOS, SetWorkflowID

    assert isinstance(getattr(dbos._outcome, 'asyncio'), _dbos._InlineSystemDB)  # noqa: B009
    hops: list[str] = []
    real = asyncio.BaseEventLoop.run_in_executor

    def counting(self, executor, fn, *args):
        hops.append(''.join(traceback.format_stack(limit=4)))
        return real(self, executor, fn, *args)

    monkeypatch.setattr(asyncio.BaseEventLoop, 'run_in_executor', counting)
    with SetWorkflowID('bookkeeping-1'):
        assert await _bookkeeping_workflow(20) == 41
    assert not [h for h in hops if 'dbos/_outcome.py' in h]  # start, step and output: all inline
    status = await DBOS.get_workflow_status_async('bookkeeping-1')
    assert status is not None and status.status == 'SUCCESS'
    steps = await DBOS.list_workflow_steps_async('bookkeeping-1')
    assert [s['output'] for s in steps] == [40]  # the step's output was recorded
    with SetWorkflowID('bookkeeping-1'):  # run again under its id: served from the record
        assert await _bookkeeping_workflow(20) == 41


def _status_row(store: StateStore, workflow_id: str) -> tuple[str, str | None, str | None]:
    import sqlalchemy as sa

    eng = sa.create_engine(store.dbos_url)
    try:
        with eng.connect() as c:
            row = c.execute(
                sa.text(
                    'SELECT s.status, s.owner_xid, o.output FROM workflow_status s '
                    'LEFT JOIN workflow_output o ON o.workflow_uuid = s.workflow_uuid WHERE s.workflow_uuid = :w'
                ),
                {'w': workflow_id},
            ).one()
        return row[0], row[1], row[2]
    finally:
        eng.dispose()


def _reopen(store: StateStore, workflow_id: str, owner: str) -> None:
    """Put a finished workflow back to PENDING under `owner` (as a run interrupted mid-way is)."""
    import sqlalchemy as sa

    eng = sa.create_engine(store.dbos_url)
    try:
        with eng.begin() as c:
            c.execute(
                sa.text("UPDATE workflow_status SET status = 'PENDING', owner_xid = :o WHERE workflow_uuid = :w"),
                {'o': owner, 'w': workflow_id},
            )
    finally:
        eng.dispose()


@pytest.mark.anyio
async def test_on_sqlite_dbos_statements_are_compiled_once_and_the_outcome_keeps_its_owner_check(launched):
    from dbos import SetWorkflowID
    from dbos._dbos import _get_dbos_instance

    sys_db = _get_dbos_instance()._sys_db
    assert isinstance(sys_db._execute_prepared, _dbos._PreparedCall)
    stmts = sys_db._execute_prepared.stmts
    with SetWorkflowID('compiled-1'):
        assert await _bookkeeping_workflow(1) == 3
    compiled = dict(stmts.cache)
    assert {name for name, _ in compiled} >= {'insert_workflow_status', 'proctor_outcome_update_owned'}
    with SetWorkflowID('compiled-2'):
        assert await _bookkeeping_workflow(2) == 5
    assert stmts.cache == compiled  # the second workflow reused every statement the first compiled
    status, owner, output = _status_row(launched, 'compiled-2')
    assert (status, owner) == ('SUCCESS', None) and output is not None  # its outcome and output stored

    # The outcome is written only to a PENDING row that the writing execution owns, as DBOS's own does.
    _reopen(launched, 'compiled-2', 'execution-a')
    assert sys_db.update_workflow_outcome('compiled-2', 'ERROR', error='late', owner_xid='execution-b') is False
    assert _status_row(launched, 'compiled-2') == ('PENDING', 'execution-a', output)  # nothing written
    assert sys_db.update_workflow_outcome('compiled-2', 'SUCCESS', output='"again"', owner_xid='execution-a')
    assert _status_row(launched, 'compiled-2') == ('SUCCESS', None, '"again"')
    assert sys_db.update_workflow_outcome('compiled-2', 'ERROR', error='twice', owner_xid='execution-a') is False
