"""OpenAI-compatible servers (llama.cpp, Ollama, vLLM, gateways): what each accepts, as pydantic-ai profiles.

A registry model `openai-compatible:<served name>` is pydantic-ai's `OpenAIChatModel` on an
`OpenAIProvider` pointed at `base_url`; its `compat` setting says how that server differs from
OpenAI's API, and each difference is one pydantic-ai model-profile key (`OpenAIModelProfile`),
so pydantic-ai builds the request. The one difference no profile key covers is the `content`
of an assistant message that only carries tool calls: OpenAI sends `null`, which llama-cpp-python's
server refuses (a 500: "Input should be a valid string"); `assistant_content = "empty"` sends `""`.

```toml
[models.local]
model = "openai-compatible:smollm2"
base_url = "http://127.0.0.1:8000/v1"
compat = "llama.cpp"                  # a preset by name ...
data_classes = ["public", "internal"]

[models.vllm]
model = "openai-compatible:Qwen/Qwen2.5-7B-Instruct"
base_url = "http://127.0.0.1:8001/v1"
compat = { preset = "vllm", forced_tool_choice = false }   # ... or a preset with overrides
data_classes = ["public"]
```

The model class is in `_openai_compat` (imported when a model is first built: the OpenAI SDK is slow to import).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ('Compat', 'PRESETS', 'compat_profile')

Preset = Literal['openai', 'llama.cpp', 'ollama', 'vllm']

#: What each server needs, measured where a server ran here (llama-cpp-python 0.3.36's
#: `llama_cpp.server`, see docs/providers.md), else from the server's documentation.
PRESETS: dict[str, dict[str, Any]] = {
    # OpenAI's own behaviour: what pydantic-ai sends by default.
    'openai': {},
    # llama-cpp-python's server: `content: null` -> 500 (request validation); `tool_choice: "required"` -> 500
    # (its chatml-function-calling handler only knows "auto" and a named function); `response_format`
    # json_schema -> 500 (only "text" / "json_object"); `max_completion_tokens` is ignored (no cap).
    'llama.cpp': {
        'assistant_content': 'empty',
        'forced_tool_choice': False,
        'max_tokens_field': 'max_tokens',
        'structured_output': 'tool',
        'json_schema_output': False,
        'json_object_output': True,
    },
    # Ollama's /v1: documents `tool_choice` as unsupported, no strict tool schemas; json_schema output works.
    'ollama': {
        'assistant_content': 'empty',
        'forced_tool_choice': False,
        'max_tokens_field': 'max_tokens',
        'strict_tools': False,
        'json_schema_output': True,
        'json_object_output': True,
    },
    # vLLM: guided decoding serves json_schema; many chat templates take a single leading system message;
    # older releases know only `max_tokens`.
    'vllm': {
        'assistant_content': 'empty',
        'max_tokens_field': 'max_tokens',
        'strict_tools': False,
        'multiple_system_messages': False,
        'json_schema_output': True,
        'json_object_output': True,
    },
}


class Compat(BaseModel):
    """How an OpenAI-compatible server differs from OpenAI's API (`compat = "<preset>"` or a table).
    Unset keys keep pydantic-ai's default for the model (which is OpenAI's behaviour)."""

    model_config = ConfigDict(extra='forbid', frozen=True)

    preset: Preset | None = None
    #: `content` of an assistant message that only carries tool calls: `null` (OpenAI) or `""`.
    assistant_content: Literal['null', 'empty'] | None = None
    #: Whether the server accepts `tool_choice: "required"` / a named tool (else pydantic-ai sends "auto").
    forced_tool_choice: bool | None = None
    #: The request field the `max_tokens` setting goes in.
    max_tokens_field: Literal['max_completion_tokens', 'max_tokens'] | None = None
    #: How structured output is asked for: output tools, the server's JSON-schema mode, or a prompt.
    structured_output: Literal['tool', 'native', 'prompted'] | None = None
    json_schema_output: bool | None = None  # `response_format: {"type": "json_schema"}` is accepted
    json_object_output: bool | None = None  # `response_format: {"type": "json_object"}` is accepted
    strict_tools: bool | None = None  # `strict: true` on tool definitions is accepted
    multiple_system_messages: bool | None = None  # more than one leading system message is accepted
    tools: bool | None = None  # function tools at all

    @model_validator(mode='before')
    @classmethod
    def _from_preset(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {'preset': value}
        if isinstance(value, dict) and value.get('preset') is not None:
            preset = PRESETS.get(value['preset'])
            if preset is not None:  # an unknown name is reported by the `preset` field
                value = {**preset, **value}
        return value

    @model_validator(mode='after')
    def _consistent(self) -> Compat:
        if self.structured_output == 'native' and self.json_schema_output is False:
            raise ValueError('structured_output = "native" needs json_schema_output (the server refuses json_schema)')
        return self

    @property
    def empty_tool_call_content(self) -> bool:
        return self.assistant_content == 'empty'


def compat_profile(compat: Compat) -> dict[str, Any]:
    """The pydantic-ai profile keys (`OpenAIModelProfile`) `compat` sets; pydantic-ai merges them over the
    model's own profile."""
    p: dict[str, Any] = {}
    if compat.forced_tool_choice is not None:
        p['supports_forced_tool_choice'] = compat.forced_tool_choice
    if compat.max_tokens_field is not None:
        p['openai_chat_supports_max_completion_tokens'] = compat.max_tokens_field == 'max_completion_tokens'
    if compat.structured_output is not None:
        p['default_structured_output_mode'] = compat.structured_output
    if compat.json_schema_output is not None:
        p['supports_json_schema_output'] = compat.json_schema_output
    if compat.json_object_output is not None:
        p['supports_json_object_output'] = compat.json_object_output
    if compat.strict_tools is not None:
        p['openai_supports_strict_tool_definition'] = compat.strict_tools
    if compat.multiple_system_messages is not None:
        p['openai_chat_supports_multiple_system_messages'] = compat.multiple_system_messages
    if compat.tools is not None:
        p['supports_tools'] = compat.tools
    return p
