"""The DBOS workflows of a team run. Registered on first import (before DBOS launches).

`proctor.team_run` is what `team.run` starts and awaits. `proctor.queued_run` is what `team.submit`
enqueues for workers (`proctor worker`): nobody awaits it, so it also keeps the run row's status.
Both rebuild the team from the factory recorded with the run when it is not built in this process
(a worker, a recovered run, `proctor resume`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
from dbos import DBOS
from dbos._error import DBOSWorkflowCancelledError

from ..exceptions import RunError
from . import _engine, _live

if TYPE_CHECKING:
    from ._team import Team

__all__ = ('team_run_workflow', 'queued_run_workflow', 'team_for')


def _build(name: str, run_id: str) -> Team:
    try:
        return _live.get_team(name)
    except RunError:
        pass
    from ._records import RunRecords

    store = _engine.launched_store()
    factory = RunRecords(store).get(run_id, with_delegations=False).factory if store is not None else None
    return _live.get_team(name, factory=factory)


async def team_for(name: str, run_id: str) -> Team:
    """Team `name`, built in this process or rebuilt from the factory recorded with run `run_id`."""
    team = _live._teams.get(name)
    if team is not None:  # built here: no lookup, no thread hop
        return team
    return await anyio.to_thread.run_sync(_build, name, run_id)


@DBOS.workflow(name='proctor.team_run')
async def team_run_workflow(team: str, run_id: str, task: str, project: str, data_class: str) -> dict[str, Any]:
    t = await team_for(team, run_id)
    return await t._execute(run_id, task, project, data_class)


@DBOS.workflow(name='proctor.queued_run')
async def queued_run_workflow(team: str, run_id: str, task: str, project: str, data_class: str) -> dict[str, Any]:
    from ._records import RunRecords

    store = _engine.launched_store()
    assert store is not None  # a workflow runs only where DBOS was launched on a store
    records = RunRecords(store)
    try:
        t = await team_for(team, run_id)  # a factory that cannot be loaded here fails the run, naming it
        await anyio.to_thread.run_sync(records.set_status, run_id, 'running')
        return await t._execute(run_id, task, project, data_class)
    except DBOSWorkflowCancelledError:
        await anyio.to_thread.run_sync(records.set_status, run_id, 'cancelled')
        raise
    except Exception as e:
        # Not BaseException: a worker shutting down cancels its runs, and another worker takes them over.
        error = f'{type(e).__name__}: {e}'[:2000]
        await anyio.to_thread.run_sync(lambda: records.set_status(run_id, 'failed', error=error))
        raise
