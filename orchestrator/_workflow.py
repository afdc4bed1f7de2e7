"""The DBOS workflow of a team run. Registered on first import (before DBOS launches)."""

from __future__ import annotations

from typing import Any

from dbos import DBOS

from . import _live

__all__ = ('team_run_workflow',)


@DBOS.workflow(name='proctor.team_run')
async def team_run_workflow(team: str, run_id: str, task: str, project: str, data_class: str) -> dict[str, Any]:
    return await _live.get_team(team)._execute(run_id, task, project, data_class)
