"""`ObserverCapability`: the pydantic-ai capability that dispatches an agent's model, tool and output
calls to the team's observers (`proctor.core.RunObserver`), and serves a durable run's recorded
responses from its checkpoint.

It is also the agent's `ToolSearch`. pydantic-ai adds a `ToolSearch` with default settings to every
agent that holds none (tool discovery for `defer_loading` tools; nothing to do without them), and at
every hook it dispatches it copies the run context once for each capability of the agent, whether
that capability implements the hook or not: a K=1 team run dispatched 171 copies with the observer
beside pydantic-ai's two injected capabilities, 116 now; ~0.4-0.6 ms of CPU a run
(`benchmarks/agent_shape.py`, `benchmarks/README.md` part 6).
Being that default `ToolSearch` (inherited, unchanged: same settings, same id, same hooks) the
observer takes its place, and the agent pays for the capabilities bare pydantic-ai has.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.capabilities import Instrumentation, ToolSearch
from pydantic_ai.capabilities.abstract import CapabilityOrdering
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.tools import RunContext, ToolDefinition

from ..core._deps import RunDeps
from ..core._events import ModelCall, OutputCall, RunObserver, ToolCall, ToolCallDenied, current_tool_call
from ..models._errors import mark_failure
from ..tracing._genai import GenAISpans

__all__ = ('ObserverCapability', 'TracedObserverCapability')


def _key(deps: RunDeps, suffix: Any) -> str:
    return f'{deps.delegation_id or deps.run_id}#{suffix}'


class ObserverCapability(ToolSearch[RunDeps]):
    """Dispatches an agent's model and tool calls to the team's observers. `spans`: the team's GenAI
    spans (`proctor.tracing._genai`), around the observers (as pydantic-ai's outermost
    `Instrumentation` was), so a guardrail's event lands on the span of the call it judged.

    A `ToolSearch` with its default settings (module docstring), compared by identity as
    capabilities are, not by those settings (which every observer shares)."""

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __init__(
        self,
        observers: list[RunObserver],
        model_ids: dict[int, str],
        *,
        checkpoint: Any = None,
        spans: GenAISpans | None = None,
        self_committing: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()  # pydantic-ai's default ToolSearch
        self.observers = observers  # the team's list: observers added later are seen too
        self.model_ids = model_ids  # id(Model) -> model id in the registry
        self.checkpoint = checkpoint  # a durable recorded team's `ModelCheckpoint` (`_checkpoint`)
        self.spans = spans
        #: Tools that commit the run's checkpoint themselves before they act (the agent's delegations
        #: in the run's workflow code: `Team._delegate`): a response calling only these is stored
        #: with their starts, in one transaction, not in one of its own first.
        self.self_committing = self_committing

    def get_ordering(self) -> CapabilityOrdering:
        # Outermost, as `ToolSearch` is; inside pydantic-ai's `Instrumentation` when a team uses it
        # (`instrumentation='pydantic-ai'`), so the observers' events land on its spans.
        return CapabilityOrdering(position='outermost', wrapped_by=(Instrumentation,))

    async def wrap_model_request(
        self, ctx: RunContext[RunDeps], *, request_context: Any, handler: Any
    ) -> ModelResponse:
        # A durable run executing again gets the response its recording holds for this step, as
        # observers did the first time (they are idempotent on `call.key`), without asking the model;
        # no `chat` span either: the execution that asked the model has one (with its usage), and a
        # second would count the call twice in any trace viewer.
        key = _key(ctx.deps, f'model:{ctx.run_step}')
        recorded = (
            await self.checkpoint.recorded(ctx.deps, key) if self.checkpoint is not None and self.observers else None
        )
        if self.spans is not None and recorded is None:
            return await self.spans.chat(
                request_context, lambda: self._model_request(ctx, request_context, handler, key, None)
            )
        return await self._model_request(ctx, request_context, handler, key, recorded)

    async def _model_request(
        self, ctx: RunContext[RunDeps], request_context: Any, handler: Any, key: str, recorded: ModelResponse | None
    ) -> ModelResponse:
        if not self.observers:
            try:
                return await handler(request_context)
            except Exception as e:
                mark_failure(e, ctx.deps.specialist, self.model_ids.get(id(request_context.model)))
                raise
        model = request_context.model
        call = ModelCall(
            deps=ctx.deps,
            key=key,
            model_id=self.model_ids.get(id(model)) or ctx.deps.model_id or model.model_name,
            model_name=model.model_name,
            system=getattr(model, 'system', ''),
            messages=request_context.messages,
            model_settings=request_context.model_settings,
        )
        for o in self.observers:
            await o.before_model_call(call)
        try:
            response = recorded if recorded is not None else await handler(request_context)
        except BaseException as e:
            mark_failure(e, ctx.deps.specialist, call.model_id)
            for o in self.observers:
                await o.on_model_error(call, e)
            raise
        for o in self.observers:
            await o.after_model_call(call, response)
        if (
            recorded is None
            and self.checkpoint is not None
            and self.checkpoint.must_commit(response, self.self_committing)
        ):
            await self.checkpoint.commit()  # before the tool calls it asks for act durably
        return response

    async def wrap_output_process(
        self, ctx: RunContext[RunDeps], *, output_context: Any, output: Any, handler: Any
    ) -> Any:
        if not self.observers or not output_context.has_function or ctx.partial_output:
            return await handler(output)
        oc = OutputCall(
            deps=ctx.deps,
            key=_key(ctx.deps, f'output:{ctx.run_step}'),
            output=output,
            function=output_context.function_name,
        )

        async def nest(i: int) -> Any:
            if i == len(self.observers):
                return await handler(oc.output)
            return await self.observers[i].process_output(oc, lambda: nest(i + 1))

        return await nest(0)

    async def wrap_tool_execute(
        self, ctx: RunContext[RunDeps], *, call: ToolCallPart, tool_def: ToolDefinition, args: Any, handler: Any
    ) -> Any:
        if self.spans is not None:
            return await self.spans.tool(call, args, lambda: self._tool_execute(ctx, call, args, handler))
        return await self._tool_execute(ctx, call, args, handler)

    async def _tool_execute(self, ctx: RunContext[RunDeps], call: ToolCallPart, args: Any, handler: Any) -> Any:
        tc = ToolCall(
            deps=ctx.deps,
            key=_key(ctx.deps, f'tool:{call.tool_call_id}'),
            tool=call.tool_name,
            tool_call_id=call.tool_call_id,
            args=dict(args) if isinstance(args, dict) else {'value': args},
            step=ctx.run_step,
        )
        token = current_tool_call.set(tc)
        try:
            if not self.observers:
                try:
                    return await handler(args)
                except ToolCallDenied as denied:
                    return denied.message
            try:
                try:
                    for o in self.observers:
                        tc.args = await o.before_tool_call(tc)
                    result = await handler(tc.args if isinstance(args, dict) else args)
                except ToolCallDenied as denied:  # an approval was rejected: the model gets the denial as the result
                    result = denied.message
                for o in self.observers:
                    result = await o.after_tool_call(tc, result)
            except Exception as e:
                for o in self.observers:
                    await o.on_tool_error(tc, e)
                raise
            return result
        finally:
            current_tool_call.reset(token)


class TracedObserverCapability(ObserverCapability):
    """`ObserverCapability` with the agent run's `invoke_agent` span too (a separate class: an agent
    without spans pays for no run hook)."""

    async def wrap_run(self, ctx: RunContext[RunDeps], *, handler: Any) -> Any:
        assert self.spans is not None
        return await self.spans.agent_run(ctx, handler)
