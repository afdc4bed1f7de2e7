"""Test doubles for teams: scripted models that need no network and no API key.

A `ScriptedModel` is a pydantic-ai `FunctionModel`, so message conversion, tool schemas, argument
validation and retries run exactly as with a real provider. It is stateless between calls: the
turn it answers is the number of model responses already in the history it is given, so the same
model can serve many concurrent runs.

```python
from proctor.testing import ScriptedModel, delegate, text

supervisor = ScriptedModel([[delegate('research', 'find the API'), delegate('coding', 'write it')],
                            lambda messages: text('done: ' + ' | '.join(tool_results(messages)))])
```
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from .core._callables import positional_arity as _arity

__all__ = (
    'ScriptedModel',
    'Step',
    'text',
    'tool_call',
    'delegate',
    'final_output',
    'fail',
    'last_user_prompt',
    'tool_results',
    'turn_of',
)

#: One scripted answer: a response, parts, a string (text), an exception to raise, or a callable
#: `(messages, info) -> any of those` (a coroutine function works too).
Step = ModelResponse | ModelResponsePart | Sequence[ModelResponsePart] | str | BaseException | Callable[..., Any]


def _next_call_id() -> str:
    # Random, not a per-process counter: a run resumed in a new process must not reuse the ids the
    # first process recorded (delegations and journaled tool calls are keyed by them).
    return f'call_{uuid.uuid4().hex[:12]}'


def text(content: str) -> ModelResponse:
    """A final text answer."""
    return ModelResponse(parts=[TextPart(content)])


def tool_call(name: str, args: dict[str, Any] | None = None, *, call_id: str | None = None) -> ToolCallPart:
    """A call of tool `name` with `args`; its id is `call_id`, or a fresh random `call_<12 hex>`."""
    return ToolCallPart(tool_name=name, args=args or {}, tool_call_id=call_id or _next_call_id())


def delegate(specialist: str, subtask: str, *, call_id: str | None = None) -> ToolCallPart:
    """The supervisor (or a sub-team's lead) delegating `subtask` to `specialist` (the tool proctor gives each)."""
    return tool_call(f'delegate_to_{specialist}', {'subtask': subtask}, call_id=call_id)


def final_output(**fields: Any) -> ToolCallPart:
    """A structured final output (pydantic-ai's output tool) with these fields."""
    return tool_call('final_result', fields)


def fail(
    status: int = 503, message: str = 'scripted provider failure', *, model_name: str = 'scripted'
) -> ModelHTTPError:
    """A provider error to put in a script: 429/5xx make `FallbackModel` try the next model."""
    return ModelHTTPError(status_code=status, model_name=model_name, body={'error': message})


def last_user_prompt(messages: Sequence[ModelMessage]) -> str:
    """The most recent user prompt in a history (what a delegated specialist was asked)."""
    for m in reversed(messages):
        if isinstance(m, ModelRequest):
            for p in m.parts:
                if isinstance(p, UserPromptPart):
                    return p.content if isinstance(p.content, str) else str(p.content)
    return ''


def tool_results(messages: Sequence[ModelMessage], tool_name: str | None = None) -> list[str]:
    """Every tool return the model has seen so far, as text, in order."""
    out: list[str] = []
    for m in messages:
        if isinstance(m, ModelRequest):
            for p in m.parts:
                if isinstance(p, ToolReturnPart) and (tool_name is None or p.tool_name == tool_name):
                    out.append(p.model_response_str())
    return out


def turn_of(messages: Sequence[ModelMessage]) -> int:
    """How many model responses are already in this history (0 on the first call of a run)."""
    return sum(1 for m in messages if isinstance(m, ModelResponse))


def _to_response(value: Any) -> ModelResponse:
    if isinstance(value, ModelResponse):
        return value
    if isinstance(value, str):
        return text(value)
    if isinstance(value, (TextPart, ToolCallPart)):
        return ModelResponse(parts=[value])
    if isinstance(value, Sequence):
        return ModelResponse(parts=list(value))
    raise TypeError(f'a scripted step must give a ModelResponse, parts or text, not {type(value).__name__}')


class ScriptedModel(FunctionModel):
    """A model that answers from a script, usable wherever a pydantic-ai model is.

    `script` is either a list of steps (step `i` answers the `i`-th call of a run, the last one
    repeats) or one callable `(messages, info) -> step` deciding from the history. Steps that are
    exceptions are raised, so provider failures can be scripted. `calls` counts requests across
    all runs (thread-safe); `latency` awaits that many seconds per call, like a real provider.
    """

    def __init__(
        self,
        script: Sequence[Step] | Callable[..., Any],
        *,
        name: str = 'scripted',
        latency: float = 0.0,
        on_call: Callable[[], Any] | None = None,
    ) -> None:
        self.script = script
        self.latency = latency
        self.on_call = on_call
        self.calls = 0
        self._lock = threading.Lock()
        super().__init__(self._answer, model_name=name)

    async def _answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        with self._lock:
            self.calls += 1
        if self.on_call is not None:
            r = self.on_call()
            if hasattr(r, '__await__'):
                await r
        if self.latency:
            import anyio

            await anyio.sleep(self.latency)
        if callable(self.script):
            step: Any = self.script
        else:
            if not self.script:
                raise ValueError(f'scripted model {self.model_name!r} has an empty script')
            step = self.script[min(turn_of(messages), len(self.script) - 1)]
        if callable(step) and not isinstance(step, (ModelResponse, BaseException)):
            step = step(messages, info) if _arity(step) >= 2 else step(messages)
            if hasattr(step, '__await__'):
                step = await step
        if isinstance(step, BaseException):
            raise step
        return _to_response(step)
