"""The DBOS workflows of a team run. Registered on first import (before DBOS launches: `launch`).

`proctor.team_run` is what `team.run` starts and awaits. `proctor.queued_run` is what `team.submit`
enqueues for workers (`proctor worker`): nobody awaits it, so it also keeps the run row's status.
Both rebuild the team from the factory recorded with the run when it is not built in this process
(a worker, a recovered run, `proctor resume`).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from dbos import DBOS

from ..exceptions import RunError
from ..models._errors import failure_text, provider_error
from ..state import _dbos as _engine
from ..state._records import RunRecords
from ..state._store import StateStore
from ._live import teams

__all__ = ('launch', 'team_run_workflow', 'queued_run_workflow', 'team_for')


def launch(store: StateStore, *, executor_id: str | None = None) -> None:
    """Launch DBOS on `store` with the team-run workflows registered (this module's import did that)."""
    _engine.ensure_launched(store, executor_id=executor_id)


def _launched_store() -> StateStore:
    store = _engine.launched_store()
    if store is None:  # pragma: no cover - a workflow runs only where DBOS was launched on a store
        raise RunError('DBOS is not launched in this process')
    return store


def _build(store: StateStore, name: str, run_id: str) -> Any:
    try:
        return teams.get(store.url, name)
    except RunError:
        pass
    factory = RunRecords(store).get(run_id, with_delegations=False).factory
    return teams.get(store.url, name, factory=factory)


async def team_for(name: str, run_id: str) -> Any:
    """Team `name`, built in this process or rebuilt from the factory recorded with run `run_id`."""
    store = _launched_store()
    team = teams.find(store.url, name)
    if team is not None:  # built here: no lookup, no thread hop
        return team
    return await anyio.to_thread.run_sync(_build, store, name, run_id)


@DBOS.workflow(name='proctor.team_run')
async def team_run_workflow(team: str, run_id: str, task: str, project: str, data_class: str) -> dict[str, Any]:
    t = await team_for(team, run_id)
    return await t.execute(run_id, task, project, data_class)


@DBOS.workflow(name='proctor.queued_run')
async def queued_run_workflow(team: str, run_id: str, task: str, project: str, data_class: str) -> dict[str, Any]:
    records = RunRecords(_launched_store())
    try:
        t = await team_for(team, run_id)  # a factory that cannot be loaded here fails the run, naming it
        await records.store.call(records.set_status, run_id, 'running')
        return await t.execute(run_id, task, project, data_class)
    except Exception as e:
        # Not BaseException: a worker shutting down cancels its runs, and another worker takes them over.
        if isinstance(e, _engine.workflow_cancelled()):
            await records.store.call(records.set_status, run_id, 'cancelled')
            raise
        error = failure_text(provider_error(e, run_id=run_id) or e, e)[:4000]  # a provider failure, said plainly
        await records.store.call(records.set_status, run_id, 'failed', error=error)
        raise
