"""A team rebuilt from a recording alone, for `replay` of a run that recorded no factory (a script).

A plain replay needs nothing live: each model request is answered by its recorded response and each
tool call by its recorded result, so the team's agents and tools only need to exist under their
recorded names. `recorded_team(rec)` builds that from the recording (the supervisor and specialists
named by its steps, each tool a stub that is never run, each model one that refuses live calls).
What the recording cannot stand in for is refused with `UserError` naming it: an agent that answered
through an output tool or an output function (its output type is code), a nested delegation.
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
    supervisor: Specialist
    specialists: dict[str, Specialist]
    router: _RecordedRouter
    guardrails: GuardrailPipeline = field(default_factory=GuardrailPipeline)
    workspace: Any = None
    notes: list[str] = field(default_factory=list)


def recorded_team(rec: Recording) -> RecordedTeam:
    """The team of `rec` as its steps name it; `UserError` saying exactly what the recording lacks."""
    agents: dict[str, str] = {}  # agent path -> specialist name
    tools: dict[str, set[str]] = {}  # specialist -> recorded tool names (not delegations)
    asked: dict[str, set[str]] = {}  # specialist -> tool names its responses called
    models: dict[str, str] = {}
    outputs: set[str] = set()
    for s in rec.steps:
        path, name = s.payload.get('agent_path'), s.payload.get('specialist')
        if not isinstance(path, str) or not isinstance(name, str):
            continue
        agents.setdefault(path, name)
        if s.kind in ('tool', 'tool_error'):
            tools.setdefault(name, set()).add(str(s.payload.get('tool')))
        elif s.kind == 'model':
            models.setdefault(name, str(s.payload.get('model_id') or name))
            for part in s.response().parts:
                if isinstance(part, ToolCallPart):
                    asked.setdefault(name, set()).add(part.tool_name)
        elif s.kind.startswith('output'):
            outputs.add(name)
    sup = agents.get('supervisor')
    if sup is None:
        raise UserError(
            f'run {rec.run_id} recorded no step of its supervisor: replay it with its team (--team module:callable)'
        )
    missing: list[str] = []
    nested = sorted(p for p in agents if p.count('>') > 1)
    if nested:
        missing.append(f'the team of nested delegation {nested[0]}')
    for name in sorted(outputs):
        missing.append(f'the output function of agent {name!r}')
    specialists = sorted(
        {n for p, n in agents.items() if p != 'supervisor'} | {d['specialist'] for d in rec.delegations}
    )
    for name in [sup, *specialists]:
        known = tools.get(name, set()) | {DELEGATE_PREFIX + s for s in specialists}
        unknown = sorted(t for t in asked.get(name, set()) - known if not t.startswith(DELEGATE_PREFIX))
        if unknown:  # a structured output type answers through a tool the recording has no result for
            missing.append(f'the output type of agent {name!r} (it answered through {", ".join(unknown)})')
    if missing:
        raise UserError(
            f'run {rec.run_id} recorded no team factory, and its recording lacks {"; ".join(missing)}: '
            'replay it with its team (--team module:callable)'
        )

    def spec(cls: type[Specialist], name: str) -> Specialist:
        return cls(
            name=name,
            instructions=f'{name} (rebuilt from the recording of run {rec.run_id})',
            tools=[_stub_tool(t) for t in sorted(tools.get(name, set()))],
        )

    names = specialists or ['unrecorded']  # a team has one specialist at least; this run delegated to none
    notes = ['no team factory was recorded: the team was rebuilt from the recording (its agents, tools as stubs)']
    if rec.guard_decisions:
        notes.append(
            f'guardrails are code, not recorded: the replay ran without them, and the {len(rec.guard_decisions)} '
            'recorded guardrail decisions were not compared'
        )
    return RecordedTeam(
        name=rec.team,
        supervisor=spec(Supervisor, sup),
        specialists={n: spec(Specialist, n) for n in names},
        router=_RecordedRouter(models),
        notes=notes,
    )
