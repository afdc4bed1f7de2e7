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
    agent_path: str  # 'supervisor', 'supervisor>coding', 'supervisor>coding>tester' (a lead's member)
    specialist: str  # the specialist this agent run is ('supervisor' for the supervisor)
    workspace: str | None = None
    model_id: str | None = None
    delegation_id: str | None = None

    def delegation_id_of(self, specialist: str, tool_call_id: str | None) -> str:
        """The id of this agent's delegation to `specialist` by tool call `tool_call_id`: `<run>:supervisor>coding:<call>`
        from the supervisor; a lead's delegation extends the lead's own id (`<run>:supervisor>coding:<call>>tester:<call>`),
        so each branch of the tree is named apart even where two leads' models reuse a tool call id."""
        return f'{self.delegation_id or f"{self.run_id}:{self.agent_path}"}>{specialist}:{tool_call_id}'

    def child(self, specialist: str, *, delegation_id: str, model_id: str | None = None) -> RunDeps:
        """The deps of a delegation from this agent to `specialist` (data class flows down unchanged)."""
        return replace(
            self,
            agent_path=f'{self.agent_path}>{specialist}',
            specialist=specialist,
            delegation_id=delegation_id,
            model_id=model_id,
        )
