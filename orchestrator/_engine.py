"""The durable engine binding: DBOS, one instance per process, bound to one state store.

A team run is the DBOS workflow `proctor.team_run` whose id is the run id; each delegation runs
as a child workflow (pydantic-ai's DBOS child-workflow tools), model requests are steps (pydantic-ai
`DBOSDurability`), and side-effecting tools are steps (`side_effect_step`). So a crashed run,
resumed, replays recorded steps instead of repeating them.

Each process launches DBOS under its own executor id, so starting a team never picks up other
processes' runs by surprise; `resume_run` explicitly re-enqueues a run's pending workflows
(children first) and this process executes them.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._state import StateStore

if TYPE_CHECKING:
    pass

__all__ = ('ensure_launched', 'in_workflow', 'side_effect_step', 'resume_run', 'launched_url', 'shutdown')

T = TypeVar('T')

_lock = threading.Lock()
_launched_url: str | None = None
EXECUTOR_ID = f'proctor-{os.getpid()}-{uuid.uuid4().hex[:8]}'
APP_VERSION = 'proctor-1'


def _quiet_dbos_logs() -> None:
    for name in ('dbos', 'dbos._logger'):
        logging.getLogger(name).setLevel(logging.WARNING)


def launched_url() -> str | None:
    return _launched_url


def ensure_launched(store: StateStore, *, executor_id: str | None = None) -> None:
    """Launch DBOS on `store`'s system database (once; re-binds if another store was in use)."""
    global _launched_url
    url = store.dbos_url
    if _launched_url == url:
        return
    with _lock:
        if _launched_url == url:
            return
        from dbos import DBOS

        from . import _workflow  # noqa: F401  (registers the team-run workflow before launch)

        os.environ.setdefault('DBOS__CLOUD', '')  # never phone home
        _quiet_dbos_logs()
        if _launched_url is not None:
            DBOS.destroy(destroy_registry=False)
        config: dict[str, Any] = {
            'name': 'proctor',
            'system_database_url': url,
            'application_version': APP_VERSION,
            'executor_id': executor_id or EXECUTOR_ID,
            'log_level': 'WARNING',
            'enable_otlp': False,
            'notification_listener_polling_interval_sec': 0.05,
        }
        if url.startswith('sqlite'):
            config['system_database_engine'] = _sqlite_engine(url)
        DBOS(config=config)  # type: ignore[arg-type]
        DBOS.launch()
        _launched_url = url


def _sqlite_engine(url: str) -> Any:
    """DBOS's own SQLite setup (IMMEDIATE transactions, busy timeout, foreign keys) plus WAL with
    synchronous=NORMAL: a commit no longer waits for fsync, and a crash of the process loses nothing."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, pool_size=20, max_overflow=20)

    @sa.event.listens_for(engine, 'connect')
    def _pragmas(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = 'IMMEDIATE'
        dbapi_conn.execute('PRAGMA journal_mode=WAL')
        dbapi_conn.execute('PRAGMA synchronous=NORMAL')
        dbapi_conn.execute('PRAGMA busy_timeout=30000')
        dbapi_conn.execute('PRAGMA foreign_keys=ON')

    return engine


def shutdown() -> None:
    """Tear DBOS down (tests, the CLI at exit)."""
    global _launched_url
    with _lock:
        if _launched_url is None:
            return
        from dbos import DBOS

        DBOS.destroy(destroy_registry=False)
        _launched_url = None


def in_workflow() -> bool:
    """True in a DBOS workflow's own code (not inside a step, not outside any workflow)."""
    if _launched_url is None:
        return False
    from dbos import DBOS

    return DBOS.workflow_id is not None and DBOS.step_id is None


async def side_effect_step(name: str, fn: Callable[[], Awaitable[T]]) -> T:
    """Run `fn` as a DBOS step inside a workflow (recorded: a recovered run gets the recorded result
    instead of acting again), or directly outside one."""
    if not in_workflow():
        return await fn()
    from dbos import DBOS

    return await DBOS.run_step_async({'name': name, 'retries_allowed': False}, fn)


def _pending_tree(root: str) -> list[str]:
    """Pending workflows under `root` (children before parents)."""
    from dbos import DBOS

    out: list[str] = []

    def visit(wid: str) -> None:
        for child in DBOS.list_workflows(parent_workflow_id=wid, load_input=False, load_output=False):
            visit(child.workflow_id)
        for st in DBOS.list_workflows(workflow_ids=[wid], load_input=False, load_output=False):
            if st.status in ('PENDING', 'ENQUEUED'):
                out.append(wid)

    visit(root)
    return out


def resume_run(run_id: str) -> Any:
    """Re-enqueue the pending workflows of run `run_id` in this process; returns the run's handle."""
    from dbos import DBOS

    for wid in _pending_tree(run_id):
        DBOS.resume_workflow(wid)
    return DBOS.retrieve_workflow(run_id)
