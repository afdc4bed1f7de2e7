"""The seam every cross-cutting feature plugs into: `RunObserver`.

A team holds a list of observers. Proctor calls them

- around every model call (`before_model_call` may refuse it, e.g. a budget; `after_model_call`
  sees the response and its usage: the ledger, the audit log and replay recordings live here),
- around every tool call (`before_tool_call` may change or refuse the arguments or wait for an
  approval; `after_tool_call` may change the result before the model sees it),
- at run and delegation boundaries (`on_event`: the live tree in the demo, metrics).

Model and tool hooks run through a pydantic-ai capability attached to every agent of the team
(`proctor.orchestrator.ObserverCapability`). In a durable run they run in workflow code, so on recovery they run again
for recorded steps: each call carries a `key` that is stable across recovery (run, delegation,
step), and observers that write must be idempotent on it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_ai.messages import ModelResponse

from ._deps import RunDeps

__all__ = (
    'RunObserver',
    'ModelCall',
    'ToolCall',
    'OutputCall',
    'ToolCallDenied',
    'RunEvent',
    'EventKind',
    'current_tool_call',
    'emit',
)


@dataclass
class ModelCall:
    """One model request of one agent run."""

    deps: RunDeps
    key: str  # stable across recovery: '<delegation or run>#<step>'
    model_id: str
    model_name: str
    system: str
    messages: list[Any]
    model_settings: Any
    started: float = field(default_factory=time.perf_counter)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolCall:
    """One tool call of one agent run."""

    deps: RunDeps
    key: str  # stable across recovery: '<delegation or run>#<tool_call_id>'
    tool: str
    tool_call_id: str
    args: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    step: int = 0  # the agent run's step (model turn) that made the call
    effects: int = 0  # side effects started so far in this call (each gets its own journal key)

    @property
    def idempotency_key(self) -> str:
        """(run or delegation, step, call): unique even where a model reuses tool call ids across turns."""
        return f'{self.key}@{self.step}'

    def next_effect_key(self) -> str:
        """The idempotency key of the next side effect of this call (stable across recovery: a tool
        body re-runs its effects in the same order)."""
        n, self.effects = self.effects, self.effects + 1
        return self.idempotency_key if n == 0 else f'{self.idempotency_key}#effect:{n}'


class ToolCallDenied(Exception):
    """Raise from `before_tool_call` (or from a tool body) to skip the tool: `message` becomes the
    tool's result, so the model is told why and goes on (like pydantic-ai's `ToolDenied`)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


#: The tool call running in this task; side effects derive their journal keys from it.
current_tool_call: ContextVar[ToolCall | None] = ContextVar('proctor_current_tool_call', default=None)


@dataclass
class OutputCall:
    """The processing of an agent's final output by its output function (`ToolOutput(fn)`, ...)."""

    deps: RunDeps
    key: str  # stable across recovery: '<delegation or run>#output:<step>'
    output: Any  # the validated output the function is called with
    function: str | None  # the output function's name, when known


EventKind = Literal[
    'run_started', 'run_finished', 'run_failed', 'delegation_started', 'delegation_finished', 'delegation_failed'
]


@dataclass
class RunEvent:
    kind: EventKind
    run_id: str
    agent_path: str
    specialist: str
    subtask: str | None = None
    model_id: str | None = None
    route_reason: str | None = None
    output: Any = None
    input_tokens: int = 0
    output_tokens: int = 0
    elapsed_s: float = 0.0
    error: str | None = None
    at: float = field(default_factory=time.time)


class RunObserver:
    """Override what you need; every hook is a no-op by default."""

    async def before_model_call(self, call: ModelCall) -> None:
        """Raise (e.g. `BudgetExceeded`) to refuse the call."""

    async def after_model_call(self, call: ModelCall, response: ModelResponse) -> None:
        """`response.usage` has the call's tokens."""

    async def on_model_error(self, call: ModelCall, error: BaseException) -> None:
        """The call failed (after pydantic-ai's own fallback, if any)."""

    async def before_tool_call(self, call: ToolCall) -> dict[str, Any]:
        """Return the (possibly changed) arguments; raise to refuse the call."""
        return call.args

    async def after_tool_call(self, call: ToolCall, result: Any) -> Any:
        """Return the (possibly changed) result the model will see."""
        return result

    async def on_tool_error(self, call: ToolCall, error: BaseException) -> None:
        """The call raised (in a hook or the tool: `ModelRetry` tells the model to try again)."""

    async def process_output(self, call: OutputCall, proceed: Callable[[], Awaitable[Any]]) -> Any:
        """Wraps an output function's run: return `await proceed()`, or a value instead of running it
        (replay does: output functions may have side effects). Observers nest in list order."""
        return await proceed()

    def on_event(self, event: RunEvent) -> None:
        """Run and delegation boundaries (synchronous and cheap: do not block)."""


def emit(observers: Sequence[RunObserver], event: RunEvent) -> None:
    for o in observers:
        o.on_event(event)
