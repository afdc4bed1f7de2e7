"""What the embedded model is asked, as pure data: the chat, the grammar's JSON schema, how to read the reply.

No llama.cpp here (unit-testable without the weights). The contract with `_local_model`:
`plan_request(...)` gives a `Plan`; the model generates under `plan.schema` (free text when None),
then `plan.read(raw)` gives the response part, or `None` when the model chose to answer in text,
in which case it generates `plan.followup` (free text) and that text is the answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    RetryFeedbackPart,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

__all__ = (
    'PROSE_GBNF',
    'TEXT_TOOL',
    'Plan',
    'plan_request',
    'chat_messages',
    'inline_refs',
    'bounded',
    'prose_pattern',
    'tool_choice_schema',
    'close_json',
)

#: The pseudo-tool that means "stop calling tools and answer" when plain text is allowed.
TEXT_TOOL = 'final_answer'
_SCHEMA_NOISE = ('title', 'description', 'examples', 'default', '$schema')
_TEXT_PENALTY = 1.1  # free text only: a mild repetition penalty keeps a tiny model from looping
#: Free text that must be prose: a capitalised start, one paragraph, no code (GBNF, not a JSON schema).
PROSE_GBNF = r'root ::= [A-Z] [^`#*\n\r\x00-\x1f]*'


def inline_refs(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """`schema` with every local `$ref` replaced by its definition (llama.cpp drops what it cannot resolve)."""
    if isinstance(schema, list):
        return [inline_refs(s, defs, depth) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if defs is None:
        defs = {**schema.get('definitions', {}), **schema.get('$defs', {})}
    ref = schema.get('$ref')
    if isinstance(ref, str):
        target = defs.get(ref.rsplit('/', 1)[-1])
        if target is None or depth > 8:  # unknown, or recursive past any sane depth: any JSON value
            return {}
        rest = {k: v for k, v in schema.items() if k != '$ref'}
        return inline_refs({**target, **rest}, defs, depth + 1)
    return {k: inline_refs(v, defs, depth) for k, v in schema.items() if k not in ('$defs', 'definitions')}


def prose_pattern(max_chars: int) -> str:
    """A sentence: a capitalised word, a space, then plain text (a tiny model otherwise writes snake_case ids)."""
    return f"^[A-Z][a-z]* [a-zA-Z0-9 ,.:;()'<>!?=_-]{{1,{max(max_chars - 3, 2)}}}$"


def bounded(schema: Any, *, max_string_chars: int, max_array_items: int, prose: bool = False) -> Any:
    """`schema` without descriptive keywords, with a bound on every unbounded string and array (so replies end).

    With `prose`, unbounded strings must also read as a sentence (`prose_pattern`).
    """
    kw = {'max_string_chars': max_string_chars, 'max_array_items': max_array_items, 'prose': prose}
    if isinstance(schema, list):
        return [bounded(s, **kw) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k in _SCHEMA_NOISE:
            continue
        if k == 'properties' and isinstance(v, dict):  # keys here are property names, not keywords
            out[k] = {name: bounded(s, **kw) for name, s in v.items()}
        else:
            out[k] = bounded(v, **kw)
    if out.get('type') == 'string' and not any(k in out for k in ('enum', 'const', 'pattern', 'format', 'maxLength')):
        if prose:
            out['pattern'] = prose_pattern(max_string_chars)
        else:
            out['maxLength'] = max_string_chars
    if out.get('type') == 'array' and 'maxItems' not in out and 'prefixItems' not in out:
        out['maxItems'] = max_array_items
    return out


def tool_choice_schema(tools: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """A schema admitting exactly one call `{"tool": name, "arguments": <its schema>}` (no `arguments` when None)."""
    options = []
    for name, args in tools.items():
        props: dict[str, Any] = {'tool': {'const': name}}
        if args is not None:
            props['arguments'] = args
        options.append({'type': 'object', 'properties': props, 'required': list(props)})
    return options[0] if len(options) == 1 else {'anyOf': options}


def close_json(text: str) -> Any:
    """Parse `text`, a JSON prefix cut short by the token limit, by closing what it left open; None if hopeless."""
    candidate = text
    for _ in range(8):
        stack: list[str] = []
        in_string = escaped = False
        last_comma = -1
        for i, ch in enumerate(candidate):
            if in_string:
                escaped = not escaped and ch == '\\'
                in_string = escaped or ch != '"'
            elif ch == '"':
                in_string = True
            elif ch in '{[':
                stack.append('}' if ch == '{' else ']')
            elif ch in '}]' and stack:
                stack.pop()
            elif ch == ',':
                last_comma = i
        fixed = (candidate[:-1] if escaped else candidate) + ('"' if in_string else '')
        fixed = fixed.rstrip().rstrip(',')
        if fixed.endswith(':'):
            fixed += ' null'
        try:
            return json.loads(fixed + ''.join(reversed(stack)), strict=False)
        except ValueError:
            if last_comma < 0:
                return None
            candidate = candidate[:last_comma]  # drop the half-written member and try again
    return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text, strict=False)
    except ValueError:
        return None


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for item in content:
        text = item if isinstance(item, str) else getattr(item, 'content', None)
        texts.append(text if isinstance(text, str) else f'[{type(item).__name__} omitted]')
    return '\n'.join(texts)


def _call_text(call: ToolCallPart) -> str:
    args = _loads(call.args) if isinstance(call.args, str) else call.args_as_dict()
    if not isinstance(args, dict):
        return f'{call.tool_name}(...)'
    shown = ', '.join(f'{k}={json.dumps(v)[:80]}' for k, v in args.items())
    return f'{call.tool_name}({shown})'


def chat_messages(
    messages: list[ModelMessage], instructions: str | None, *, calls_as_json: bool = True, max_tool_chars: int = 3000
) -> list[dict[str, str]]:
    """The chat the GGUF's template renders: system (instructions first), then user and assistant turns.

    With `calls_as_json` a tool call is shown back as the JSON the grammar made the model write;
    without it (free-text answers) calls and rejected replies are left out, so the model neither
    imitates JSON nor repeats what was refused, and each result is introduced by the call that
    produced it. Results and retry feedback are user turns.
    Turns are plain strings (the SmolLM2 template concatenates `content`: never None).
    """
    out: list[dict[str, str]] = [{'role': 'system', 'content': instructions}] if instructions else []
    calls: dict[str, ToolCallPart] = {}

    def add(role: str, text: str) -> None:
        if out and out[-1]['role'] == role and role != 'system':
            out[-1]['content'] += '\n\n' + text
        else:
            out.append({'role': role, 'content': text})

    for i, message in enumerate(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, SystemPromptPart):
                    if len(out) == 1 and out[0]['role'] == 'system':
                        out[0]['content'] = f'{part.content}\n\n{out[0]["content"]}'
                    else:
                        add('system', part.content)
                elif isinstance(part, UserPromptPart):
                    add('user', _content_text(part.content))
                elif isinstance(part, ToolReturnPart):
                    text = part.model_response_str()
                    if len(text) > max_tool_chars:
                        text = text[:max_tool_chars] + f'\n[... {len(text) - max_tool_chars} characters cut]'
                    call = calls.get(part.tool_call_id)
                    add(
                        'user',
                        f'Result of {_call_text(call) if call and not calls_as_json else part.tool_name}:\n{text}',
                    )
                elif isinstance(part, RetryFeedbackPart):
                    # The application's own words, without the fence and preamble a tiny model would copy.
                    add('user', part.content if isinstance(part.content, str) else part.model_response())
                elif isinstance(part, RetryPromptPart):
                    add('user', part.model_response())
        elif isinstance(message, ModelResponse):
            if not calls_as_json and _rejected(messages, i):
                continue  # shown its rejected reply again, a tiny model repeats it; the feedback says enough
            texts = []
            for rpart in message.parts:
                if isinstance(rpart, TextPart):
                    texts.append(rpart.content)
                elif isinstance(rpart, ToolCallPart):
                    calls[rpart.tool_call_id] = rpart
                    if calls_as_json:
                        args = _loads(rpart.args) if isinstance(rpart.args, str) else rpart.args_as_dict()
                        texts.append(
                            json.dumps({'tool': rpart.tool_name, 'arguments': args if args is not None else rpart.args})
                        )
            if texts:
                add('assistant', '\n'.join(texts))
    return out


def _rejected(messages: list[ModelMessage], i: int) -> bool:
    """Whether the response at `i` was answered with retry feedback (its text was not accepted)."""
    nxt = messages[i + 1] if i + 1 < len(messages) else None
    return isinstance(nxt, ModelRequest) and any(isinstance(p, RetryFeedbackPart | RetryPromptPart) for p in nxt.parts)


@dataclass
class Plan:
    """One generation: the chat, the grammar's schema (None: free text), and how to read the reply."""

    messages: list[dict[str, str]]
    schema: dict[str, Any] | None
    max_tokens: int
    tools: tuple[str, ...] = ()  # the names the grammar admits (TEXT_TOOL included when text is allowed)
    native_output: bool = False  # the schema is the output object itself: the reply is its JSON text
    sampling: dict[str, Any] = field(default_factory=dict)
    followup: Plan | None = None  # the free-text generation when the model picks `text_tool`
    gbnf: str | None = None  # a grammar for free text (schema None), e.g. PROSE_GBNF
    text_tool: str | None = None  # the pseudo-tool standing for "answer" (TEXT_TOOL unless a real tool has that name)

    def read(self, raw: str) -> ModelResponsePart | None:
        """The response part for the raw reply; None when the model chose to answer in text (run `followup`)."""
        if self.schema is None:
            return TextPart(raw.strip())
        if self.native_output:
            return TextPart(raw)
        data = _loads(raw)
        if not isinstance(data, dict):
            data = close_json(raw)
        if not isinstance(data, dict) or data.get('tool') not in self.tools:
            return TextPart(raw)  # unusable: pydantic-ai answers with retry feedback
        args = data.get('arguments')
        if data['tool'] == self.text_tool:
            return None if args is None else TextPart(json.dumps(args))
        return ToolCallPart(tool_name=data['tool'], args=args if isinstance(args, dict) else {})


def _first_line(d: ToolDefinition) -> str:
    lines = (d.description or '').strip().splitlines()
    return lines[0] if lines else d.name


def plan_request(
    messages: list[ModelMessage],
    instructions: str | None,
    settings: Mapping[str, Any],
    params: ModelRequestParameters,
    *,
    default_max_tokens: int,
) -> Plan:
    """Decide which tools the grammar admits (honouring `tool_choice`), the output shape and the chat."""
    from pydantic_ai.models._tool_choice import resolve_tool_choice

    limits = {
        'max_string_chars': int(settings.get('local_max_string_chars', 400)),
        'max_array_items': int(settings.get('local_max_array_items', 6)),
        'prose': bool(settings.get('local_prose_strings', False)),
    }
    max_tool_chars = int(settings.get('local_max_tool_chars', 3000))
    declared = params.declared_tool_defs
    choice = resolve_tool_choice(cast(ModelSettings, settings), params)
    if choice == 'none':
        allowed: dict[str, ToolDefinition] = {}
        text_ok = True
    elif isinstance(choice, tuple):
        allowed = {n: declared[n] for n in sorted(choice[1]) if n in declared}
        text_ok = choice[0] == 'auto'
    else:
        allowed, text_ok = dict(declared), choice == 'auto'
    output_object = params.output_object if params.output_mode in ('native', 'prompted') else None

    max_tokens = int(settings.get('max_tokens') or default_max_tokens)
    sampling: dict[str, Any] = {'temperature': settings.get('temperature', 0.0), 'seed': settings.get('seed', 7)}
    if 'top_p' in settings:
        sampling['top_p'] = settings['top_p']
    if settings.get('stop_sequences'):
        sampling['stop'] = list(settings['stop_sequences'])
    text_chat = chat_messages(messages, instructions, calls_as_json=False, max_tool_chars=max_tool_chars)
    prose = PROSE_GBNF if settings.get('local_prose_text') else None
    text_plan = Plan(text_chat, None, max_tokens, sampling={'repeat_penalty': _TEXT_PENALTY, **sampling}, gbnf=prose)

    if not allowed:
        if output_object is not None:
            schema = bounded(inline_refs(output_object.json_schema), **limits)
            return Plan(text_plan.messages, schema, max_tokens, native_output=True, sampling=sampling)
        return text_plan

    args: dict[str, dict[str, Any] | None] = {
        n: bounded(inline_refs(d.parameters_json_schema), **limits) for n, d in allowed.items()
    }
    text_tool = TEXT_TOOL if TEXT_TOOL not in declared else f'{TEXT_TOOL}_in_text'
    # Every tool of the agent is listed, not only the ones this step admits (the grammar sees to that):
    # the system prompt then stays the same from step to step and llama.cpp reuses its evaluated prefix.
    lines = [f'- {n}: {_first_line(d)}' for n, d in declared.items()]
    if params.allow_text_output:
        lines.append(
            f'- {text_tool}: stop calling tools and answer'
            if output_object is None
            else f'- {text_tool}: give your final answer'
        )
    followup = None
    if text_ok:
        if output_object is not None:
            args[text_tool] = bounded(inline_refs(output_object.json_schema), **limits)
        else:
            args[text_tool] = None  # choosing it is enough: the answer itself is written as free text next
            followup = text_plan
    else:
        text_tool = None
    how = 'Reply with one JSON object {"tool": ..., "arguments": {...}} that calls one of these tools:\n' + '\n'.join(
        lines
    )
    chat = chat_messages(messages, f'{instructions}\n\n{how}' if instructions else how, max_tool_chars=max_tool_chars)
    return Plan(
        chat,
        tool_choice_schema(args),
        max_tokens,
        tools=tuple(args),
        sampling=sampling,
        followup=followup,
        text_tool=text_tool,
    )
