"""`Specialist` and `Supervisor`: what a developer declares; `Team` turns them into pydantic-ai agents."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

from pydantic_ai import AgentModelSettings
from pydantic_ai.models import KnownModelName, Model
from pydantic_ai.output import OutputSpec
from pydantic_ai.tools import Tool, ToolFuncEither
from pydantic_ai.toolsets import AbstractToolset
from typing_extensions import TypeVar

from ..core._deps import RunDeps
from ..exceptions import UserError

__all__ = ('Specialist', 'Supervisor', 'DEFAULT_SUPERVISOR_INSTRUCTIONS', 'OutputT', 'ModelRef', 'ToolLike')

#: What an agent answers with: `str` unless its `output_type` says otherwise.
OutputT = TypeVar('OutputT', default=str)
#: A model a specialist may name: a registry id or pydantic-ai model string, or a `Model`.
ModelRef = Model | KnownModelName | str
#: A function tool (taking `RunContext[RunDeps]` first, or plain) or a pydantic-ai `Tool`.
ToolLike = Tool[RunDeps] | ToolFuncEither[RunDeps, ...]

_NAME = re.compile(r'^[a-z][a-z0-9_]{0,47}$')

DEFAULT_SUPERVISOR_INSTRUCTIONS = (
    'You are the supervisor of a team of specialists. Split the task into subtasks and delegate each '
    'one to the specialist that suits it, using the delegate_to_<specialist> tools. Delegate '
    'independent subtasks in the same turn so they run in parallel. When the results are in, answer '
    'the task from them.'
)


@dataclass
class Specialist(Generic[OutputT]):
    """One member of a team: a role, the model it prefers, its tools and its output type.

    `model` is a registry id, a pydantic-ai model string (`openai:gpt-4o-mini`) or a `Model`.
    `tools` are pydantic-ai tools (functions taking `RunContext[RunDeps]` first, or `Tool`s);
    `toolsets` are pydantic-ai toolsets (e.g. an `MCPToolset`). `description` is what the
    supervisor is told about this specialist (defaults to the first line of `instructions`).
    `requires` lists capabilities the router must find in the model (`coding`, `reasoning`, ...).

    `team` makes this specialist the lead of a sub-team: it delegates to each member through a
    `delegate_to_<member>` tool, as the supervisor delegates to it (several in one turn run in
    parallel), and a member may lead a team of its own, to the team's `max_depth`
    (`Specialist('coding', ..., team=[implementer, tester])`; the member `tester` runs as
    `supervisor>coding>tester`). The `Team`'s durability, guardrails, data class, router, budgets,
    recording and tracing apply to every level; each member keeps its own tools and model.
    """

    name: str
    instructions: str
    model: ModelRef | None = None
    tools: Sequence[ToolLike] = ()
    toolsets: Sequence[AbstractToolset[RunDeps]] = ()
    output_type: OutputSpec[OutputT] = str  # pyright: ignore[reportAssignmentType] - str is the default OutputT
    description: str | None = None
    requires: Sequence[str] = ()
    fallback_models: Sequence[ModelRef] = ()
    retries: int = 2
    model_settings: AgentModelSettings[RunDeps] | None = None  # or a per-step callable of RunContext[RunDeps]
    extra: dict[str, Any] = field(default_factory=dict)
    team: Sequence[Specialist[Any]] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise UserError(f'specialist name {self.name!r} must be lower-case letters, digits and _ (it names a tool)')
        if not isinstance(self.instructions, str) or not self.instructions.strip():
            raise UserError(f'specialist {self.name!r} needs instructions')
        self.tools = tuple(self.tools)
        self.toolsets = tuple(self.toolsets)
        self.requires = tuple(self.requires)
        self.fallback_models = tuple(self.fallback_models)
        self.team = tuple(self.team)

    @property
    def summary(self) -> str:
        return (self.description or self.instructions.strip().splitlines()[0])[:300]


@dataclass
class Supervisor(Specialist[OutputT]):
    """The agent that splits a task and delegates to the team's specialists (through tools)."""

    name: str = 'supervisor'
    instructions: str = DEFAULT_SUPERVISOR_INSTRUCTIONS
