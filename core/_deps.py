"""What every agent of a run is given as pydantic-ai `deps`: small, picklable, durable.

DBOS records child-workflow arguments, so deps carry ids and names only; live objects (the team,
its stores) are looked up in the process by team name (`proctor.orchestrator._live`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ('RunDeps',)


@dataclass(frozen=True)
class RunDeps:
    run_id: str
    team: str
    project: str
    data_class: str
    agent_path: str  # 'supervisor', 'supervisor>coding'
    specialist: str  # the specialist this agent run is ('supervisor' for the supervisor)
    workspace: str | None = None
    model_id: str | None = None
    delegation_id: str | None = None

    def child(self, specialist: str, *, delegation_id: str, model_id: str | None = None) -> RunDeps:
        """The deps of a delegation from this agent to `specialist` (data class flows down unchanged)."""
        return replace(
            self,
            agent_path=f'{self.agent_path}>{specialist}',
            specialist=specialist,
            delegation_id=delegation_id,
            model_id=model_id,
        )
