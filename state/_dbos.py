"""The durable engine binding: DBOS, one instance per process, bound to one state store.

A team run is the DBOS workflow `proctor.team_run` whose id is the run id. Model requests are not
steps: the run's recording checkpoints them (`_checkpoint`). Delegations run in the run's own
workflow code, where their side effects are made exactly-once by the tool journal and their
approvals are polled (`in_workflow()` is False there); a delegation to a specialist with toolsets
(MCP calls are DBOS steps) or an output function runs as a child workflow (pydantic-ai's DBOS
child-workflow tools). The supervisor's own side-effecting tools are DBOS steps over the journal
(`side_effect_step`). So a crashed run, resumed, replays what was recorded instead of repeating it.

Each process launches DBOS under its own executor id, so starting a team never picks up other
processes' runs by surprise; `resume_run` explicitly re-enqueues a run's pending workflows
(children first) and this process executes them, unless another live process holds them
(`live_holder`).

This is the one module that touches DBOS beyond its public API (`tests/test_dbos_adapter.py` pins
the DBOS version these were checked against and exercises each):

- `dbos._dbos._get_or_create_dbos_registry()._register_internal_queue(...)` and its
  `internal_queue_map`: in-process queues only this process polls (`register_queue`, `drop_queue`);
- a queue's `_worker_concurrency` (`pause_queue`: dequeue nothing more while draining);
- `dbos._dbos._get_dbos_instance()._sys_db.get_pending_workflows / reenqueue_for_recovery`: what
  DBOS's own recovery calls, for a worker taking over a dead one (`pending_workflows`, `reenqueue`);
- `dbos._error.DBOSWorkflowCancelledError` (`workflow_cancelled`);
- `dbos._context.get_local_dbos_context()` (its `workflow_id`, `owner_xid`: the token of the execution
  that owns the workflow now), `_sys_db._check_owner_txn` and `dbos._error.DBOSWorkflowConflictIDError`:
  the fence of the tool journal (`owner_fence`, `ownership_lost`);
- the module `dbos._outcome`'s `asyncio` name (`_InlineSystemDB`): on a SQLite system database the
  short transactions DBOS wraps around every async workflow and step (record its start, check for a
  recorded result, record its output) run inline instead of in a thread (see `_InlineSystemDB`);
- on a SQLite system database, its `_execute_prepared` and `_update_workflow_outcome_in_transaction`
  are replaced by `_SQLiteStatements` (statements compiled once), which uses its `_now_ms_sql`,
  `_wf_values`, `_key_conflict`, `_reject_shard_key`, `tables` and `dbos._schemas.SCHEMA_PLACEHOLDER`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from ._store import StateStore

__all__ = (
    'APP_VERSION',
    'EXECUTOR_ID',
    'delegation_in_parent_workflow',
    'drop_queue',
    'ensure_launched',
    'in_workflow',
    'launched_store',
    'launched_url',
    'live_holder',
    'lost_ownership',
    'owner_fence',
    'ownership_lost',
    'pause_queue',
    'pending_workflows',
    'rebuildable',
    'reenqueue',
    'register_queue',
    'resume_run',
    'run_step',
    'shutdown',
    'workflow_cancelled',
)

T = TypeVar('T')


@dataclass
class _Engine:
    """What this process launched DBOS on (DBOS itself is one instance per process)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str | None = None
    store: StateStore | None = None
    executor_id: str | None = None
    resume_queue: str | None = None
    #: The system database is SQLite: DBOS's per-workflow bookkeeping runs inline (`_InlineSystemDB`).
    inline: bool = False


_engine = _Engine()


class _InlineSystemDB:
    """What `dbos._outcome` sees as `asyncio`: the module itself, but `to_thread` runs the function
    inline (in a copy of the context, as `asyncio.to_thread` does) while the system database is SQLite.

    `dbos._outcome` is where DBOS wraps each async workflow and step in its bookkeeping: a thread hop
    before it (record the start, look for a recorded result) and one after (record the output). On
    SQLite each is one short local WAL transaction, and the hop around it costs more CPU than the
    transaction (~0.5 ms a hop in DBOS's executor; an empty workflow 3.8 -> 1.6 ms CPU,
    `benchmarks/README.md`). Waits are not among them: DBOS resolves those on the event loop
    (`DeferredResult.resolve_async`). On Postgres every call still goes to DBOS's threads."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def to_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if _engine.inline:
            return contextvars.copy_context().run(fn, *args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)


def _inline_bookkeeping(sqlite: bool) -> None:
    import dbos._outcome as outcome

    _engine.inline = sqlite
    if not isinstance(getattr(outcome, 'asyncio', None), _InlineSystemDB):
        setattr(outcome, 'asyncio', _InlineSystemDB())  # noqa: B010 - a private name of DBOS's (module docstring)


class _SQLiteStatements:
    """The statements DBOS writes for every workflow on a SQLite system database, compiled once.

    DBOS compiles its hot-path statements once per process on Postgres (`_execute_prepared`) but
    builds and compiles them on every call on SQLite, and builds the outcome's UPDATE per call
    (`_update_workflow_outcome_in_transaction`): ~0.4 ms CPU of a run's ~2 ms of DBOS bookkeeping.
    Here both go through one cache of SQLite's compilation (positional `?` parameters, each value
    through its type's bind processor, as DBOS's Postgres path does). Same statements, same
    transactions, same checks: the outcome is still written only to a PENDING row its owner holds.
    """

    def __init__(self, sys_db: Any) -> None:
        self.sys_db = sys_db
        self.dialect = sys_db.engine.dialect
        self.original = sys_db._execute_prepared
        self.cache: dict[tuple[Any, ...], tuple[str, list[tuple[str, Any]], dict[str, Any]]] = {}

    @classmethod
    def install(cls) -> None:
        from dbos._dbos import _get_dbos_instance

        sys_db = _get_dbos_instance()._sys_db
        if isinstance(getattr(sys_db, '_execute_prepared', None), _PreparedCall):
            return
        stmts = cls(sys_db)
        sys_db._execute_prepared = _PreparedCall(stmts)
        sys_db._update_workflow_outcome_in_transaction = stmts.update_outcome

    def execute(
        self, conn: Any, name: str, values: dict[str, Any], build: Callable[[], Any], *, insert_columns: bool = True
    ) -> Any:
        import sqlalchemy as sa

        connection = conn.connection() if not isinstance(conn, sa.Connection) else conn
        if connection.dialect is not self.dialect:
            return self.original(conn, name, values, build, insert_columns=insert_columns)
        key = (name, tuple(values))
        prepared = self.cache.get(key)
        if prepared is None:
            from dbos._schemas import SCHEMA_PLACEHOLDER

            compiled = build().compile(
                dialect=self.dialect,
                column_keys=list(values) if insert_columns else None,
                schema_translate_map={SCHEMA_PLACEHOLDER: self.sys_db.schema},
                render_schema_translate=True,
            )
            order: list[tuple[str, Any]] = []
            constants: dict[str, Any] = {}
            for bind_name in compiled.positiontup or ():
                bind = compiled.binds[bind_name]
                order.append((bind_name, bind.type.dialect_impl(self.dialect).bind_processor(self.dialect)))
                if bind_name not in values:
                    constants[bind_name] = bind.value
            prepared = self.cache[key] = (str(compiled), order, constants)
        sql, order, constants = prepared
        params = []
        for bind_name, process in order:
            v = values[bind_name] if bind_name in values else constants[bind_name]
            params.append(v if process is None else process(v))
        return connection.exec_driver_sql(sql, tuple(params))

    def update_outcome(
        self, workflow_id: str, status: str, *, output: str | None, error: str | None, owner_xid: str | None
    ) -> bool:
        """DBOS's `_update_workflow_outcome_in_transaction` (3.4), its UPDATE compiled once."""
        import sqlalchemy as sa

        db = self.sys_db
        ws = db.tables.workflow_status
        values: dict[str, Any] = {'proctor_wf': workflow_id, 'proctor_status': status}
        if owner_xid is not None:
            values['proctor_owner'] = owner_xid

        def build_update() -> Any:
            now_ms = db._now_ms_sql()
            update = (
                sa.update(ws)
                .values(
                    status=sa.bindparam('proctor_status', type_=ws.c.status.type),
                    deduplication_id=None,
                    owner_xid=None,
                    updated_at=now_ms,
                    completed_at=now_ms,
                )
                .where(ws.c.workflow_uuid == sa.bindparam('proctor_wf', type_=ws.c.workflow_uuid.type))
                .where(ws.c.status == 'PENDING')
            )
            if owner_xid is not None:
                update = update.where(ws.c.owner_xid == sa.bindparam('proctor_owner', type_=ws.c.owner_xid.type))
            return update

        db._reject_shard_key(workflow_id, None)  # DBOS's own check of the workflow id (its `_wf`'s)
        with db.engine.begin() as c:
            name = 'proctor_outcome_update' + ('' if owner_xid is None else '_owned')
            if self.execute(c, name, values, build_update, insert_columns=False).rowcount == 0:
                return False  # the outcome was not ours to write: no orphan payload
            output_values = dict(**db._wf_values(workflow_id), workflow_uuid=workflow_id, output=output, error=error)

            def build_output_upsert() -> Any:
                insert = db.dialect.insert(db.tables.workflow_output)
                return insert.on_conflict_do_update(
                    index_elements=db._key_conflict('workflow_uuid'),
                    set_={'output': insert.excluded.output, 'error': insert.excluded.error},
                )

            self.execute(c, 'upsert_workflow_output', output_values, build_output_upsert)
            return True


class _PreparedCall:
    """`_SQLiteStatements.execute` in the place of the system database's `_execute_prepared`."""

    def __init__(self, stmts: _SQLiteStatements) -> None:
        self.stmts = stmts

    def __call__(self, conn: Any, name: str, values: dict[str, Any], build: Callable[[], Any], **kw: Any) -> Any:
        return self.stmts.execute(conn, name, values, build, **kw)


# Host and pid in the id let another process tell whether the holder of a pending run is alive.
EXECUTOR_ID = f'proctor-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}'
# 2: model requests are no longer DBOS steps (the recording checkpoints them, `_checkpoint`): a run
# pending under 1 would find different step numbers, so this version does not recover it.
APP_VERSION = 'proctor-2'
EXECUTOR_THREADS = int(os.environ.get('PROCTOR_DBOS_THREADS', '8'))


class _RebuildFilter(logging.Filter):
    """Drops DBOS's 'Duplicate registration' warning for the steps and workflows of a durable agent
    built again in this process (a team rebuilt in a test or notebook): re-registering replaces the
    previous build's functions, as `_live` replaces the team, so the latest build serves recovery.
    Reusing the first build's functions instead would run the old build's models and tools."""

    _PREFIX = "Duplicate registration of function '"

    def __init__(self) -> None:
        super().__init__('proctor.rebuild')
        self.agents: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if not msg.startswith(self._PREFIX):
            return True
        name = msg[len(self._PREFIX) :].partition("'")[0]
        return name.partition('__')[0] not in self.agents


_rebuild_filter = _RebuildFilter()


def rebuildable(agent_name: str) -> None:
    """Let durable agent `agent_name` ('team.specialist') register its DBOS functions again, quietly."""
    logger = logging.getLogger('dbos')
    if _rebuild_filter not in logger.filters:
        logger.addFilter(_rebuild_filter)
    _rebuild_filter.agents.add(agent_name)


def _quiet_dbos_logs() -> None:
    for name in ('dbos', 'dbos._logger'):
        logging.getLogger(name).setLevel(logging.WARNING)


def launched_url() -> str | None:
    return _engine.url


def launched_store() -> StateStore | None:
    """The state store DBOS was launched on in this process (workflows read run rows from it)."""
    return _engine.store


def ensure_launched(store: StateStore, *, executor_id: str | None = None) -> None:
    """Launch DBOS on `store`'s system database (once; re-binds if another store was in use).

    The workflows it will run must be registered first (importing `proctor.orchestrator._workflow`)."""
    url = store.dbos_url
    if _engine.url == url:
        return
    with _engine.lock:
        if _engine.url == url:
            return
        from dbos import DBOS

        os.environ.setdefault('DBOS__CLOUD', '')  # never phone home
        _quiet_dbos_logs()
        if _engine.url is not None:
            DBOS.destroy(destroy_registry=False)
        _declare_resume_queue(executor_id or EXECUTOR_ID)
        config: dict[str, Any] = {
            'name': 'proctor',
            'system_database_url': url,
            'application_version': APP_VERSION,
            'executor_id': executor_id or EXECUTOR_ID,
            'log_level': 'WARNING',
            'enable_otlp': False,
            'notification_listener_polling_interval_sec': 0.05,
            # DBOS runs its database calls in its executor, unbounded by default: 1,000 concurrent
            # runs then queue 1,000 threads on a 40-connection pool (30 s timeouts, retries). A few
            # threads keep the pool fed and the runs queue in the executor instead
            # (benchmarks/concurrency.py: 102 s -> 84 s for 1,000 runs, no pool timeouts).
            'max_executor_threads': EXECUTOR_THREADS,
        }
        if url.startswith('sqlite'):
            config['system_database_engine'] = _sqlite_engine(url)
        DBOS(config=config)  # type: ignore[arg-type]
        _inline_bookkeeping(url.startswith('sqlite'))
        DBOS.launch()
        if url.startswith('sqlite'):
            _SQLiteStatements.install()
        _engine.url = url
        _engine.store = store
        _engine.executor_id = executor_id or EXECUTOR_ID


def _sqlite_engine(url: str) -> Any:
    """DBOS's own SQLite setup (IMMEDIATE transactions, busy timeout, foreign keys) plus WAL with
    synchronous=NORMAL: a commit no longer waits for fsync, and a crash of the process loses nothing."""
    import sqlalchemy as sa
    from sqlalchemy import event as sa_event

    engine = sa.create_engine(url, pool_size=20, max_overflow=20)

    @sa_event.listens_for(engine, 'connect')
    def _pragmas(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = 'IMMEDIATE'
        dbapi_conn.execute('PRAGMA journal_mode=WAL')
        dbapi_conn.execute('PRAGMA synchronous=NORMAL')
        dbapi_conn.execute('PRAGMA busy_timeout=30000')
        dbapi_conn.execute('PRAGMA foreign_keys=ON')

    return engine


def shutdown() -> None:
    """Tear DBOS down (tests, the CLI at exit)."""
    with _engine.lock:
        if _engine.url is None:
            return
        from dbos import DBOS

        DBOS.destroy(destroy_registry=False)
        _engine.url = None
        _engine.store = None
        _engine.executor_id = None


#: Set while a delegation runs in its parent's workflow code (`Team._delegate`): its concurrent
#: siblings share that workflow, whose DBOS operation ids are drawn in call order, so no DBOS
#: operation may be issued there. Its side effects are made exactly-once by the tool journal alone
#: and its approvals are waited for by polling their table, as outside a workflow.
_in_parent_workflow: ContextVar[bool] = ContextVar('proctor_delegation_in_parent_workflow', default=False)


def in_workflow() -> bool:
    """True where DBOS operations may be issued: a DBOS workflow's own code (not inside a step, not
    outside any workflow, not inside a delegation running in its parent's workflow code)."""
    if _engine.url is None or _in_parent_workflow.get():
        return False
    from dbos import DBOS

    return DBOS.workflow_id is not None and DBOS.step_id is None


@contextmanager
def delegation_in_parent_workflow() -> Iterator[None]:
    """The code in this block is a delegation that runs in its parent's workflow code."""
    token = _in_parent_workflow.set(True)
    try:
        yield
    finally:
        _in_parent_workflow.reset(token)


async def run_step(name: str, fn: Callable[[], Awaitable[T]]) -> T:
    """Run `fn` as a DBOS step of the current workflow (its outcome recorded, never retried)."""
    from dbos import DBOS

    return cast(T, await DBOS.run_step_async({'name': name, 'retries_allowed': False}, fn))


def _pending_tree(root: str) -> list[Any]:
    """Statuses of the pending workflows under `root` (children before parents)."""
    from dbos import DBOS

    out: list[Any] = []

    def visit(wid: str) -> None:
        for child in DBOS.list_workflows(parent_workflow_id=wid, load_input=False, load_output=False):
            visit(child.workflow_id)
        for st in DBOS.list_workflows(workflow_ids=[wid], load_input=False, load_output=False):
            if st.status in ('PENDING', 'ENQUEUED'):
                out.append(st)

    visit(root)
    return out


def _declare_resume_queue(executor_id: str) -> None:
    """An in-process DBOS queue that only this process polls (as DBOS's own internal queue is)."""
    _engine.resume_queue = f'proctor-resume.{executor_id}'
    register_queue(_engine.resume_queue, polling_interval_sec=1.0)


# ---------------------------------------------------------------- DBOS private API (listed above)


def workflow_cancelled() -> type[BaseException]:
    """The exception DBOS raises into a workflow that was cancelled (imported on use: DBOS is heavy)."""
    from dbos._error import DBOSWorkflowCancelledError

    return DBOSWorkflowCancelledError


def ownership_lost() -> type[BaseException]:
    """The exception that tells an execution it no longer owns its workflow (another process took the
    run over): it must stop, writing nothing more (DBOS then adopts the owner's outcome)."""
    from dbos._error import DBOSWorkflowConflictIDError

    return DBOSWorkflowConflictIDError


def lost_ownership(e: BaseException) -> bool:
    """Whether `e` says this execution lost its workflow to another (see `ownership_lost`)."""
    return _engine.url is not None and isinstance(e, ownership_lost())


@contextmanager
def owner_fence() -> Iterator[None]:
    """Hold this execution's ownership of the DBOS workflow it runs in while the block runs (the tool
    journal's begin), or raise `ownership_lost()` if another execution owns it now.

    A worker declared dead while still running (a long pause) goes on executing a run that another
    worker took over, until its heartbeat tells it: its side effects must not happen too. DBOS
    checks ownership when it records a step or an outcome, not before a step acts, and a delegation
    in its parent's workflow code issues no DBOS operation at all; so the journal asks here, holding
    the workflow's row (`FOR NO KEY UPDATE` on Postgres, the write lock on SQLite) until the block
    has committed its row: a take-over (`reenqueue_for_recovery`, a resume) waits for it, and then
    finds the journal row (done, or in doubt). Outside a DBOS workflow there is nothing to hold."""
    ctx = None
    if _engine.url is not None:
        from dbos._context import get_local_dbos_context

        ctx = get_local_dbos_context()
    workflow_id = getattr(ctx, 'workflow_id', None)
    owner = getattr(ctx, 'owner_xid', None)
    if not workflow_id or owner is None:
        yield
        return
    from dbos._dbos import _get_dbos_instance

    sys_db = _get_dbos_instance()._sys_db
    with sys_db.engine.begin() as c:
        sys_db._check_owner_txn(c, workflow_id, owner)
        yield


def register_queue(name: str, *, worker_concurrency: int | None = None, polling_interval_sec: float = 1.0) -> Any:
    """An in-process DBOS queue (polled only by this process, as DBOS's Kafka consumers use), replacing
    one of that name; declare it before `ensure_launched`."""
    from dbos._dbos import _get_or_create_dbos_registry

    registry = _get_or_create_dbos_registry()
    registry.internal_queue_map.pop(name, None)
    return registry._register_internal_queue(
        name, worker_concurrency=worker_concurrency, polling_interval_sec=polling_interval_sec
    )


def drop_queue(name: str) -> None:
    from dbos._dbos import _get_or_create_dbos_registry

    _get_or_create_dbos_registry().internal_queue_map.pop(name, None)


def pause_queue(queue: Any) -> None:
    """This process dequeues nothing more from `queue` (a worker draining)."""
    queue._worker_concurrency = 0


def pending_workflows(executor_id: str) -> list[Any]:
    """The workflows DBOS holds PENDING for `executor_id` under this application version."""
    from dbos._dbos import _get_dbos_instance

    return list(_get_dbos_instance()._sys_db.get_pending_workflows(executor_id, APP_VERSION))


def reenqueue(workflow_id: str, dead_executors: list[str], queue: str) -> bool:
    """Hand a dead executor's pending workflow back to DBOS on `queue` (DBOS's own recovery call)."""
    from dbos._dbos import _get_dbos_instance

    return bool(_get_dbos_instance()._sys_db.reenqueue_for_recovery(workflow_id, dead_executors, queue))


def live_holder(store: StateStore, run_id: str) -> tuple[str, bool] | None:
    """Another process that is executing run `run_id` now: `(what it is, whether that is certain)`, or None.

    A workflow DBOS marks PENDING under another executor is held by it; the holder counts as alive
    when its heartbeat (a worker) or its process (same host) says so, and when neither can tell (a
    plain process on another machine), to be safe. Call after `ensure_launched`.
    """
    from ._heartbeats import Heartbeats

    beats = Heartbeats(store)
    for st in _pending_tree(run_id):
        holder = st.executor_id
        if st.status != 'PENDING' or not holder or holder in (_engine.executor_id, EXECUTOR_ID, 'local'):
            continue  # not held, or held by this process (an interrupted run of its own)
        alive, what = beats.executor_alive(holder, same_machine=store.is_sqlite)
        if alive is not False:
            return what, alive is True
    return None


def resume_run(run_id: str) -> Any:
    """Re-enqueue the pending workflows of run `run_id` in this process; returns the run's handle,
    or None when the run has no workflow (its process died before starting it)."""
    from dbos import DBOS

    if DBOS.get_workflow_status(run_id) is None:
        return None
    for st in _pending_tree(run_id):
        # Onto this process's own queue: DBOS's internal queue is polled by every process on the
        # database (workers, the console), which could take the run without its team built.
        DBOS.resume_workflow(st.workflow_id, queue_name=_engine.resume_queue)
    return DBOS.retrieve_workflow(run_id)
