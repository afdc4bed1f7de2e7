"""proctor's own OpenTelemetry GenAI spans for a team's agents: `invoke_agent {agent}`, `chat {model}`,
`execute_tool {tool}`, following the GenAI semantic conventions with the names and attributes
pydantic-ai's `Instrumentation` gives them (`tests/test_genai_spans.py` compares the two on one run).

They are emitted from proctor's observer capability (`orchestrator._observers`), which already wraps
every agent run, model request and tool call, so a traced agent pays for no second capability, no
baggage, no per-request parameter dumps and no usage-attribution context: on the K=1 workload
tracing cost +3.1 ms CPU per run with pydantic-ai's capability (`benchmarks/README.md`). Kept the same:

- span names and kinds (`chat` is CLIENT), `gen_ai.operation.name`, `gen_ai.provider.name` (and the
  deprecated `gen_ai.system`), `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.response.id`,
  `gen_ai.response.finish_reasons`, `gen_ai.usage.*` (per request), `gen_ai.aggregated_usage.*` (per
  agent run), `gen_ai.agent.name`, `gen_ai.agent.call.id`, `gen_ai.conversation.id`, `gen_ai.tool.name`,
  `gen_ai.tool.call.id`, `gen_ai.request.<setting>`, `server.address`/`server.port`;
- `gen_ai.input.messages`, `gen_ai.output.messages`, `pydantic_ai.all_messages` in pydantic-ai's JSON
  format (its public `InstrumentationSettings.messages_to_otel_messages`), with their text only when
  content capture is on (`PROCTOR_TRACE_CONTENT`, default on), each message serialised once per agent
  run and reused by every later request's input; `gen_ai.tool.definitions`, encoded once per set of
  tools; with content on also `gen_ai.system_instructions`, `gen_ai.tool.call.arguments`/`.result`
  and `final_result`.

Left out: `model_request_parameters` and `logfire.json_schema` (a JSON dump of the tool schemas per
request, and a Logfire display hint), `operation.cost` (the ledger prices calls), pydantic-ai's
token-usage metrics. `gen_ai.response.model` is the model that served (the response's own name:
the provider's, not a proctor router wrapper's); `proctor.model_id` on a chat span is the registry
id that served (`metadata['proctor']`, stamped by the router), when one did.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred
from pydantic_ai.messages import InstructionPart, ModelRequest, ModelResponse
from pydantic_core import to_json

__all__ = ('GenAISpans',)

_REQUEST_SETTINGS = ('max_tokens', 'temperature', 'top_p', 'seed', 'presence_penalty', 'frequency_penalty')


@dataclass
class _AgentRun:
    """What the spans of one agent run share: its identity attributes, and its messages' JSON."""

    attrs: dict[str, Any]
    fragments: dict[int, tuple[Any, str]] = field(default_factory=dict)  # id(message) -> (message, JSON)
    instructions: str | None = None


_current: contextvars.ContextVar[_AgentRun | None] = contextvars.ContextVar('proctor_genai_run', default=None)


def _to_json(value: Any) -> str:
    try:
        return to_json(value, fallback=str).decode()
    except Exception:  # a lone surrogate, say: a trace must never fail a run
        import json

        return json.dumps(value, default=str)


def _error(span: Any, e: BaseException) -> None:
    span.set_status(Status(StatusCode.ERROR, f'{type(e).__name__}: {e}'[:2000]))
    span.record_exception(e)


class GenAISpans:
    """The GenAI spans of one team's agents, on `tracer_provider`; message content when `content`."""

    def __init__(self, tracer_provider: Any, *, content: bool) -> None:
        from pydantic_ai.models.instrumented import InstrumentationSettings

        self.tracer = otel_trace.get_tracer('proctor.genai', tracer_provider=tracer_provider)
        self.content = content
        # Only for its message conversion (the JSON format of pydantic-ai's spans); it emits nothing.
        self._settings = InstrumentationSettings(
            tracer_provider=otel_trace.NoOpTracerProvider(), include_content=content
        )
        self._models: dict[int, tuple[Any, dict[str, Any]]] = {}  # id(model) -> (model, its attributes)
        self._tools: dict[tuple[int, ...], tuple[list[Any], str]] = {}  # ids of tool definitions -> their JSON

    # ------------------------------------------------------------------ agent runs

    async def agent_run(self, ctx: Any, handler: Callable[[], Awaitable[Any]]) -> Any:
        """`invoke_agent {agent}` around one agent run (its requests and tool calls inside it)."""
        agent = (ctx.agent.name if ctx.agent else None) or 'agent'
        model = ctx.model
        shared = {
            'gen_ai.agent.name': agent,
            'gen_ai.agent.call.id': ctx.run_id or '',
            'gen_ai.conversation.id': ctx.conversation_id or '',
        }
        span = self.tracer.start_span(
            f'invoke_agent {agent}',
            attributes={
                'model_name': model.model_name if model else 'no-model',
                'agent_name': agent,
                **shared,
                'gen_ai.operation.name': 'invoke_agent',
                'logfire.msg': f'{agent} run',
            },
        )
        run = _AgentRun(shared)
        run_token = _current.set(run)
        token = otel_context.attach(otel_trace.set_span_in_context(span))
        result = None
        try:
            result = await handler()
            return result
        except BaseException as e:
            _error(span, e)
            raise
        finally:
            otel_context.detach(token)
            _current.reset(run_token)
            if result is not None:
                usage = result.usage
                attrs: dict[str, Any] = {
                    'gen_ai.aggregated_usage.input_tokens': usage.input_tokens,
                    'gen_ai.aggregated_usage.output_tokens': usage.output_tokens,
                }
                attrs['pydantic_ai.all_messages'] = self._messages_json(run, result.all_messages())
                if self.content:
                    out = result.output
                    attrs['final_result'] = out if isinstance(out, str) else _to_json(out)
                    attrs.update(self._instructions(run.instructions))
                span.set_attributes(attrs)
            span.end()

    # ------------------------------------------------------------------ model requests

    def _model_attributes(self, model: Any) -> dict[str, Any]:
        hit = self._models.get(id(model))
        if hit is not None and hit[0] is model:
            return hit[1]
        attrs: dict[str, Any] = {'gen_ai.provider.name': model.system, 'gen_ai.system': model.system}
        base_url = getattr(model, 'base_url', None)
        if base_url:
            url = urlparse(base_url)
            if url.hostname:
                attrs['server.address'] = url.hostname
            if url.port:
                attrs['server.port'] = url.port
        attrs['gen_ai.request.model'] = model.model_name
        self._models[id(model)] = (model, attrs)
        return attrs

    async def chat(self, request_context: Any, handler: Callable[[], Awaitable[ModelResponse]]) -> ModelResponse:
        """`chat {model}` around one model request."""
        model = request_context.model
        run = _current.get()
        attrs = {'gen_ai.operation.name': 'chat', **(run.attrs if run else {}), **self._model_attributes(model)}
        settings = request_context.model_settings
        if settings:
            for key in _REQUEST_SETTINGS:
                value = settings.get(key)
                if isinstance(value, (int, float, str, bool)):
                    attrs[f'gen_ai.request.{key}'] = value
        span = self.tracer.start_span(f'chat {model.model_name}', kind=SpanKind.CLIENT, attributes=attrs)
        token = otel_context.attach(otel_trace.set_span_in_context(span))
        try:
            response = await handler()
        except BaseException as e:
            otel_context.detach(token)
            _error(span, e)
            span.end()
            raise
        otel_context.detach(token)
        end: dict[str, Any] = response.usage.opentelemetry_attributes()
        if response.model_name:
            end['gen_ai.response.model'] = response.model_name
        served = ((response.metadata or {}).get('proctor') or {}).get('model_id')
        if served:
            end['proctor.model_id'] = served
        if response.provider_response_id:
            end['gen_ai.response.id'] = response.provider_response_id
        if response.finish_reason:
            end['gen_ai.response.finish_reasons'] = (response.finish_reason,)
        # Messages always, their text only with content on (pydantic-ai's settings leave it out).
        messages = request_context.messages
        if run is not None:
            end['gen_ai.input.messages'] = self._messages_json(run, messages)
        else:
            end['gen_ai.input.messages'] = _to_json(self._settings.messages_to_otel_messages(list(messages)))
        end['gen_ai.output.messages'] = '[' + self._fragment(response) + ']'
        if self.content:
            instructions = self._instructions_of(request_context)
            if run is not None:
                run.instructions = instructions
            end.update(self._instructions(instructions))
        tools = request_context.model_request_parameters.function_tools
        if tools:
            end['gen_ai.tool.definitions'] = self._tool_definitions(tools)
        span.set_attributes(end)
        span.end()
        return response

    def _tool_definitions(self, tools: Sequence[Any]) -> str:
        # One agent offers the same tools on every request: encoded once per set of definitions.
        key = tuple(id(t) for t in tools)
        hit = self._tools.get(key)
        if hit is None or any(a is not b for a, b in zip(hit[0], tools)):
            hit = self._tools[key] = (
                list(tools),
                _to_json(
                    [
                        {
                            'type': 'function',
                            'name': t.name,
                            **({'description': t.description} if t.description else {}),
                            'parameters': t.parameters_json_schema,
                        }
                        for t in tools
                    ]
                ),
            )
            while len(self._tools) > 256:
                self._tools.pop(next(iter(self._tools)))
        return hit[1]

    @staticmethod
    def _instructions_of(request_context: Any) -> str | None:
        parts = getattr(request_context.model_request_parameters, 'instruction_parts', None)
        if parts:
            return InstructionPart.join(parts)
        for m in reversed(request_context.messages):
            if isinstance(m, ModelRequest) and m.instructions:
                return m.instructions
        return None

    @staticmethod
    def _instructions(instructions: str | None) -> dict[str, str]:
        if not instructions:
            return {}
        return {'gen_ai.system_instructions': _to_json([{'type': 'text', 'content': instructions}])}

    def _fragment(self, message: Any) -> str:
        return to_json(self._settings.messages_to_otel_messages([message]), fallback=str).decode()[1:-1]

    def _messages_json(self, run: _AgentRun, messages: Sequence[Any]) -> str:
        """The OTel JSON of `messages`, each message serialised once per agent run (the history is
        sent again with every request: serialising it whole each time would be quadratic)."""
        parts = []
        cache = run.fragments
        for m in messages:
            hit = cache.get(id(m))
            if hit is None or hit[0] is not m:
                hit = cache[id(m)] = (m, self._fragment(m))
            if hit[1]:
                parts.append(hit[1])
        return '[' + ','.join(parts) + ']'

    # ------------------------------------------------------------------ tool calls

    async def tool(self, call: Any, args: Any, handler: Callable[[], Awaitable[Any]]) -> Any:
        """`execute_tool {tool}` around one tool call."""
        run = _current.get()
        attrs = {
            'gen_ai.operation.name': 'execute_tool',
            'gen_ai.tool.name': call.tool_name,
            'gen_ai.tool.call.id': call.tool_call_id,
            **(run.attrs if run else {}),
            'logfire.msg': f'running tool: {call.tool_name}',
        }
        if self.content:
            attrs['gen_ai.tool.call.arguments'] = args if isinstance(args, str) else _to_json(args)
        span = self.tracer.start_span(f'execute_tool {call.tool_name}', attributes=attrs)
        token = otel_context.attach(otel_trace.set_span_in_context(span))
        try:
            result = await handler()
        except (CallDeferred, ApprovalRequired) as e:  # control flow (an approval, a deferral), not an error
            otel_context.detach(token)
            span.set_attribute('pydantic_ai.tool.deferral.name', type(e).__name__)
            span.end()
            raise
        except BaseException as e:
            otel_context.detach(token)
            _error(span, e)
            span.end()
            raise
        otel_context.detach(token)
        if self.content:
            span.set_attribute('gen_ai.tool.call.result', result if isinstance(result, str) else _to_json(result))
        span.end()
        return result
