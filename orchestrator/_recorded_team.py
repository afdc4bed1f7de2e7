"""A team rebuilt from a recording alone, for `replay` of a run that recorded no factory (a script).

A plain replay needs nothing live: each model request is answered by its recorded response and each
tool call by its recorded result, so the team's agents and tools only need to exist under their
recorded names. `recorded_team(rec)` builds that from the recording (the supervisor and specialists
named by its steps, each tool a stub that is never run, each model one that refuses live calls).
Sub-teams are rebuilt by agent path. What the recording cannot stand in for is refused with
`UserError` naming it: an agent that answered through an output tool or an output function (its
output type is code).
Guardrails are code too: the replay runs without them and does not compare their decisions
(`RecordedTeam.notes` says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import Tool
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import FunctionModel

from ..agents._specialist import Specialist, Supervisor
from ..exceptions import RunError, UserError
from ..guardrails._pipeline import GuardrailPipeline
from ..models._routing import Route
from ..tracing._recording import DELEGATE_PREFIX, Recording
from ._tree import DEFAULT_MAX_DEPTH, SUPERVISOR_PATH, AgentTree

__all__ = ('RecordedTeam', 'recorded_team')

_ANY_ARGS = {'type': 'object', 'additionalProperties': True}


def _stub_tool(name: str) -> Tool[Any]:
    def stub(**_: Any) -> Any:  # pragma: no cover - replay returns the recorded result instead
        raise RunError(f'tool {name!r} has no code in a replay rebuilt from its recording')

    return Tool.from_schema(stub, name=name, description=f'{name} (as recorded)', json_schema=_ANY_ARGS)


def _no_live(name: str, model_id: str) -> Model:
    def refuse(*_: Any) -> Any:
        raise RunError(
            f'agent {name!r} has no model to continue live in a replay rebuilt from its recording: '
            f'pass --model {name}=MODEL (it ran on {model_id})'
        )

    return FunctionModel(refuse, model_name=f'recorded:{model_id}')


class _RecordedRouter:
    """Routes each agent to the model id its recorded responses name (live requests are refused)."""

    def __init__(self, model_ids: dict[str, str]) -> None:
        self.model_ids = model_ids

    def candidates(self, spec: Any) -> dict[str, Model]:
        mid = str(self.model_ids.get(spec.name, spec.name))
        return {mid: _no_live(spec.name, mid)}

    def route(self, spec: Any, *, data_class: str, project: str, team: str) -> Route:
        mid = str(self.model_ids.get(spec.name, spec.name))
        return Route(model_id=mid, model=_no_live(spec.name, mid), reason='as recorded')

    def observers(self) -> list[Any]:
        return []


@dataclass
class RecordedTeam:
    """What `replay` reads of a team, rebuilt from a recording (it is never run itself)."""

    name: str
    supervisor: Specialist[Any]
    specialists: dict[str, Specialist[Any]]
    tree: AgentTree
    max_depth: int
    router: _RecordedRouter
    guardrails: GuardrailPipeline = field(default_factory=GuardrailPipeline)
    workspace: Any = None
    notes: list[str] = field(default_factory=list)


def recorded_team(rec: Recording) -> RecordedTeam:
    """The team of `rec` as its steps name it (sub-teams too, by agent path); `UserError` saying
    exactly what the recording lacks."""
    agents: dict[str, str] = {}  # agent path -> specialist name
    tools: dict[str, set[str]] = {}  # agent path -> recorded tool names (not delegations)
    asked: dict[str, set[str]] = {}  # agent path -> tool names its responses called
    models: dict[str, str] = {}  # specialist name -> the model id its responses name
    outputs: set[str] = set()
    for s in rec.steps:
        path, name = s.payload.get('agent_path'), s.payload.get('specialist')
        if not isinstance(path, str) or not isinstance(name, str):
            continue
        agents.setdefault(path, name)
        if s.kind in ('tool', 'tool_error'):
            tools.setdefault(path, set()).add(str(s.payload.get('tool')))
        elif s.kind == 'model':
            models.setdefault(name, str(s.payload.get('model_id') or name))
            for part in s.response().parts:
                if isinstance(part, ToolCallPart):
                    asked.setdefault(path, set()).add(part.tool_name)
        elif s.kind.startswith('output'):
            outputs.add(path)
    if SUPERVISOR_PATH not in agents:
        raise UserError(
            f'run {rec.run_id} recorded no step of its supervisor: replay it with its team (--team module:callable)'
        )
    for path, called in list(asked.items()):  # a member it delegated to that never got to a model step
        for tool in called:
            if tool.startswith(DELEGATE_PREFIX):
                agents.setdefault(f'{path}>{tool[len(DELEGATE_PREFIX) :]}', tool[len(DELEGATE_PREFIX) :])
    members: dict[str, list[str]] = {}  # lead path -> its members' paths
    for path in agents:
        if path != SUPERVISOR_PATH:
            members.setdefault(path.rpartition('>')[0], []).append(path)
    missing = [f'the output function of agent {p!r}' for p in sorted(outputs)]
    for path in agents:
        known = tools.get(path, set()) | {DELEGATE_PREFIX + agents[m] for m in members.get(path, [])}
        unknown = sorted(asked.get(path, set()) - known)
        if unknown:  # a structured output type answers through a tool the recording has no result for
            missing.append(f'the output type of agent {path!r} (it answered through {", ".join(unknown)})')
    if missing:
        raise UserError(
            f'run {rec.run_id} recorded no team factory, and its recording lacks {"; ".join(missing)}: '
            'replay it with its team (--team module:callable)'
        )

    def spec(path: str, cls: type[Specialist[Any]] = Specialist) -> Specialist[Any]:
        name = agents[path]
        return cls(
            name=name,
            instructions=f'{name} (rebuilt from the recording of run {rec.run_id})',
            tools=[_stub_tool(t) for t in sorted(tools.get(path, set()))],
            team=[spec(m) for m in sorted(members.get(path, []))] if path != SUPERVISOR_PATH else (),
        )

    supervisor = spec(SUPERVISOR_PATH, Supervisor)
    # a team has one specialist at least: a run that delegated to none gets a stand-in nobody calls
    specialists = [spec(m) for m in sorted(members.get(SUPERVISOR_PATH, []))] or [
        Specialist('unrecorded', 'A stand-in: the recorded run delegated to no specialist.')
    ]
    depth = max([p.count('>') for p in agents] + [DEFAULT_MAX_DEPTH])
    notes = ['no team factory was recorded: the team was rebuilt from the recording (its agents, tools as stubs)']
    if rec.guard_decisions:
        notes.append(
            f'guardrails are code, not recorded: the replay ran without them, and the {len(rec.guard_decisions)} '
            'recorded guardrail decisions were not compared'
        )
    return RecordedTeam(
        name=rec.team,
        supervisor=supervisor,
        specialists={s.name: s for s in specialists},
        tree=AgentTree.build(rec.team, supervisor, specialists, max_depth=depth),
        max_depth=depth,
        router=_RecordedRouter(models),
        notes=notes,
    )
