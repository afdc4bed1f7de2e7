"""Queued runs: `team.submit` / `proctor submit` put a run on a DBOS queue that workers drain.

A submitted run is recorded first (status `enqueued`, with the factory that rebuilds its team), then
enqueued as the DBOS workflow `proctor.queued_run` whose id is the run id, through a `DBOSClient`:
the submitting process launches no DBOS and executes nothing. Any `proctor worker` listening on the
queue dequeues it, rebuilds the team from the factory and runs it; `wait_for_run` follows it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import RunError, UserError
from ._dbos import APP_VERSION

if TYPE_CHECKING:
    from ._records import RunRecord
    from ._store import StateStore

__all__ = (
    'RUN_QUEUE',
    'TERMINAL',
    'recovery_queue',
    'check_queue_name',
    'normalize_factory',
    'submit_run',
    'wait_for_run',
    'dbos_client',
    'close_clients',
)

#: The queue `proctor worker` and `team.submit` use unless told otherwise.
RUN_QUEUE = 'proctor-runs'
#: Run statuses after which a run changes no more.
TERMINAL = ('succeeded', 'failed', 'cancelled')
APP_NAME = 'proctor'

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def recovery_queue(queue: str) -> str:
    """Where the workers of `queue` re-enqueue the delegations of a dead worker's runs."""
    return f'{queue}.recovery'


def check_queue_name(queue: str) -> str:
    if not queue or not queue.replace('-', '').replace('_', '').replace('.', '').isalnum() or len(queue) > 150:
        raise UserError(f'queue name {queue!r} must be 1-150 letters, digits, "-", "_" or "."')
    if queue.startswith('_dbos') or queue.endswith('.recovery'):
        raise UserError(f'queue name {queue!r} is reserved')
    return queue


def normalize_factory(spec: str) -> str:
    """`file.py:fn` with an absolute path (workers run elsewhere); `package.module:fn` unchanged."""
    target, sep, attr = spec.rpartition(':')
    if sep and target.endswith('.py'):
        return f'{Path(target).expanduser().resolve()}:{attr}'
    return spec


def dbos_client(store: StateStore) -> Any:
    """A `DBOSClient` on `store`'s DBOS system database (created, and migrated, once per process)."""
    url = store.dbos_url
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.get(url)
            if client is None:
                from dbos import DBOS, DBOSClient

                DBOS.migrate(url)  # a client never migrates; the first submit may precede every worker
                client = _clients[url] = DBOSClient(system_database_url=url, application_name=APP_NAME)
    return client


def close_clients() -> None:
    """Release the clients' connections (tests, scripts at exit)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for c in clients:
        c.destroy()


def submit_run(
    store: StateStore,
    *,
    team: str,
    factory: str,
    task: str,
    project: str,
    data_class: str,
    run_id: str,
    queue: str = RUN_QUEUE,
    workspace: str | None = None,
) -> str:
    """Record run `run_id` as enqueued and put it on `queue`; returns the run id (sync)."""
    from ._records import RunRecords

    check_queue_name(queue)
    records = RunRecords(store)
    try:
        existing = records.get(run_id, with_delegations=False)
    except UserError:
        existing = None
    if existing is not None and existing.run_id == run_id:
        raise UserError(f'run {run_id!r} already exists (status {existing.status}); submit with a new run id')
    records.create_run(
        run_id=run_id,
        team=team,
        project=project,
        data_class=data_class,
        task=task,
        factory=factory,
        workspace=workspace,
        durable=True,
        status='enqueued',
    )
    _flush(records)  # the row, with its factory, is committed before any worker can dequeue the run
    options: dict[str, Any] = {
        'workflow_name': 'proctor.queued_run',
        'queue_name': queue,
        'workflow_id': run_id,
        'app_version': APP_VERSION,
    }
    dbos_client(store).enqueue(options, team, run_id, task, project, data_class)
    return run_id


def _flush(records: Any) -> None:
    flush = getattr(records, 'flush', None)
    if flush is not None:
        flush()


def wait_for_run(
    store: StateStore,
    run_id: str,
    *,
    timeout: float | None = None,
    poll: float = 0.2,
    on_status: Callable[[RunRecord], Any] | None = None,
) -> RunRecord:
    """Block until run `run_id` is succeeded, failed or cancelled; returns its record (sync).

    `on_status(record)` is called on every status change; raises `RunError` after `timeout` seconds.
    """
    from ._records import RunRecords

    records = RunRecords(store)
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        rec = records.get(run_id, with_delegations=False)
        if rec.status != last:
            last = rec.status
            if on_status is not None:
                on_status(rec)
        if rec.status in TERMINAL:
            return records.get(rec.run_id)
        if deadline is not None and time.monotonic() >= deadline:
            raise RunError(f'run {rec.run_id} is still {rec.status} after {timeout:g}s', run_id=rec.run_id)
        time.sleep(poll)
