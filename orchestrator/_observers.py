"""The seam every cross-cutting feature plugs into: `RunObserver`.

A team holds a list of observers. Proctor calls them

- around every model call (`before_model_call` may refuse it, e.g. a budget; `after_model_call`
  sees the response and its usage: the ledger, the audit log and replay recordings live here),
- around every tool call (`before_tool_call` may change or refuse the arguments or wait for an
  approval; `after_tool_call` may change the result before the model sees it),
- at run and delegation boundaries (`on_event`: the live tree in the demo, metrics).

Model and tool hooks run through a pydantic-ai capability attached to every agent of the team
(`ObserverCapability`). In a durable run they run in workflow code, so on recovery they run again
for recorded steps: each call carries a `key` that is stable across recovery (run, delegation,
step), and observers that write must be idempotent on it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_ai.capabilities.abstract import AbstractCapability
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.tools import RunContext, ToolDefinition

from ._context import RunDeps

__all__ = ('RunObserver', 'ModelCall', 'ToolCall', 'RunEvent', 'ObserverCapability', 'emit')


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


EventKind = Literal['run_started', 'run_finished', 'run_failed', 'delegation_started', 'delegation_finished', 'delegation_failed']


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

    def on_event(self, event: RunEvent) -> None:
        """Run and delegation boundaries (synchronous and cheap: do not block)."""


def emit(observers: Sequence[RunObserver], event: RunEvent) -> None:
    for o in observers:
        o.on_event(event)


def _key(deps: RunDeps, suffix: Any) -> str:
    return f'{deps.delegation_id or deps.run_id}#{suffix}'


class ObserverCapability(AbstractCapability[RunDeps]):
    """Dispatches an agent's model and tool calls to the team's observers."""

    def __init__(self, observers: list[RunObserver], model_ids: dict[int, str]) -> None:
        self.observers = observers  # the team's list: observers added later are seen too
        self.model_ids = model_ids  # id(Model) -> model id in the registry

    async def wrap_model_request(self, ctx: RunContext[RunDeps], *, request_context: Any, handler: Any) -> ModelResponse:
        if not self.observers:
            return await handler(request_context)
        model = request_context.model
        call = ModelCall(
            deps=ctx.deps,
            key=_key(ctx.deps, f'model:{ctx.run_step}'),
            model_id=self.model_ids.get(id(model)) or ctx.deps.model_id or model.model_name,
            model_name=model.model_name,
            system=getattr(model, 'system', ''),
            messages=request_context.messages,
            model_settings=request_context.model_settings,
        )
        for o in self.observers:
            await o.before_model_call(call)
        try:
            response = await handler(request_context)
        except BaseException as e:
            for o in self.observers:
                await o.on_model_error(call, e)
            raise
        for o in self.observers:
            await o.after_model_call(call, response)
        return response

    async def wrap_tool_execute(
        self, ctx: RunContext[RunDeps], *, call: ToolCallPart, tool_def: ToolDefinition, args: Any, handler: Any
    ) -> Any:
        if not self.observers:
            return await handler(args)
        tc = ToolCall(
            deps=ctx.deps,
            key=_key(ctx.deps, f'tool:{call.tool_call_id}'),
            tool=call.tool_name,
            tool_call_id=call.tool_call_id,
            args=dict(args) if isinstance(args, dict) else {'value': args},
        )
        for o in self.observers:
            tc.args = await o.before_tool_call(tc)
        result = await handler(tc.args if isinstance(args, dict) else args)
        for o in self.observers:
            result = await o.after_tool_call(tc, result)
        return result
