"""proctor's own GenAI spans against pydantic-ai's `Instrumentation` on the same scripted run (span
names, kinds, attribute keys, the tree), and a run exported to a real OTLP/HTTP receiver on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from proctor import Specialist, Supervisor, Team
from proctor.exceptions import UserError
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_call, tool_results

ROOT = Path(__file__).resolve().parent.parent

#: Keys pydantic-ai's spans have that proctor's leave out on purpose (tracing/_genai.py): a JSON dump
#: of the request parameters per request, a Logfire display hint.
OMITTED = {'model_request_parameters', 'logfire.json_schema'}
#: Keys proctor's spans add: the registry model that served a request.
ADDED = {'proctor.model_id'}
#: Keys only there with content capture on (messages are there either way, their text only with it).
CONTENT = {'gen_ai.system_instructions', 'gen_ai.tool.call.arguments', 'gen_ai.tool.call.result', 'final_result'}


def lookup(topic: str) -> str:
    """Look a topic up."""
    return f'notes on {topic}'


def build(name: str, **kw) -> Team:
    def supervisor(messages):
        results = tool_results(messages)
        if not results:
            return [delegate('research', 'find the api'), delegate('coding', 'write it')]
        return text('done: ' + ' | '.join(sorted(results)))

    def research(messages):
        done = tool_results(messages, 'lookup')
        if not done:
            return [tool_call('lookup', {'topic': last_user_prompt(messages)})]
        return text(f'research: {done[0]}')

    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='sup-model')),
        [
            Specialist('research', 'Research.', model=ScriptedModel(research, name='res-model'), tools=[lookup]),
            Specialist('coding', 'Code.', model=ScriptedModel(lambda m: text('coded'), name='cod-model')),
        ],
        name=name,
        **{'durable': False, **kw},
    )


def _spans(instrumentation: str, name: str):
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    team = build(name, tracer_provider=provider, instrumentation=instrumentation)
    return team, exp


def _genai(finished) -> list:
    return [s for s in finished if s.attributes.get('gen_ai.operation.name')]


def _shape(finished) -> Counter:
    """(name, kind, the nearest GenAI ancestor's operation) of each GenAI span: the tree, minus proctor's own spans."""
    by_id = {s.context.span_id: s for s in finished}

    def genai_parent(s):
        p = by_id.get(s.parent.span_id) if s.parent is not None else None
        while p is not None and not p.attributes.get('gen_ai.operation.name'):
            p = by_id.get(p.parent.span_id) if p.parent is not None else None
        return p.name if p is not None else None

    return Counter((s.name, s.kind.name, genai_parent(s)) for s in _genai(finished))


def _keys(finished) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in _genai(finished):
        out.setdefault(s.name.split(' ')[0] + ' ' + s.name.split(' ')[1].split('.')[-1], set()).update(s.attributes)
    return out


@pytest.mark.anyio
@pytest.mark.parametrize('content', [True, False], ids=['content', 'no-content'])
async def test_own_genai_spans_match_pydantic_ai_instrumentation(state_dir, monkeypatch, content):
    monkeypatch.setenv('PROCTOR_TRACE_CONTENT', '1' if content else '0')
    theirs_team, theirs = _spans('pydantic-ai', 'genai')
    await theirs_team.run('build it')
    theirs_team.close()
    ours_team, ours = _spans('proctor', 'genai')
    result = await ours_team.run('build it')

    a, b = theirs.get_finished_spans(), ours.get_finished_spans()
    assert {s.instrumentation_scope.name for s in _genai(a)} == {'pydantic-ai'}
    assert {s.instrumentation_scope.name for s in _genai(b)} == {'proctor.genai'}
    # Same spans (names, kinds) in the same tree, and one trace per run either way.
    assert _shape(b) == _shape(a)
    assert sum(1 for s in b if s.name == 'chat res-model') == 2 and len({s.context.trace_id for s in b}) == 1
    # Same attribute keys per kind of span, but for the ones left out on purpose.
    ka, kb = _keys(a), _keys(b)
    assert ka.keys() == kb.keys()
    for span in ka:
        assert kb[span] - ADDED == ka[span] - OMITTED, span
    every = set().union(*kb.values())
    assert (every & CONTENT == CONTENT) if content else not (every & CONTENT)
    for k in (
        'gen_ai.operation.name',
        'gen_ai.provider.name',
        'gen_ai.request.model',
        'gen_ai.response.model',
        'gen_ai.usage.input_tokens',
        'gen_ai.usage.output_tokens',
        'gen_ai.agent.name',
        'gen_ai.tool.name',
        'gen_ai.tool.call.id',
    ):
        assert k in every, k

    # Same values where both are deterministic: models, usage, tool ids and, with content, the messages.
    def values(spans, name, keys):
        def norm(v):  # the scripted model draws fresh tool call ids each run
            return re.sub(r'call_[0-9a-f]+', 'call_*', v) if isinstance(v, str) else v

        ordered = sorted(spans, key=lambda s: s.start_time)
        return [{k: norm(s.attributes.get(k)) for k in keys} for s in ordered if s.name == name]

    chat_keys = ['gen_ai.request.model', 'gen_ai.response.model', 'gen_ai.provider.name', 'gen_ai.usage.input_tokens']
    chat_keys += ['gen_ai.usage.output_tokens', 'gen_ai.input.messages', 'gen_ai.output.messages']
    for name in ('chat sup-model', 'chat res-model', 'chat cod-model'):
        assert values(b, name, chat_keys) == values(a, name, chat_keys), name
    tool_keys = ['gen_ai.tool.name'] + (['gen_ai.tool.call.arguments', 'gen_ai.tool.call.result'] if content else [])
    assert values(b, 'execute_tool lookup', tool_keys) == values(a, 'execute_tool lookup', tool_keys)
    agent_keys = ['gen_ai.agent.name', 'gen_ai.aggregated_usage.input_tokens', 'gen_ai.aggregated_usage.output_tokens']
    agent_keys += ['pydantic_ai.all_messages'] + (['final_result', 'gen_ai.system_instructions'] if content else [])
    assert values(b, 'invoke_agent genai.research', agent_keys) == values(a, 'invoke_agent genai.research', agent_keys)
    assert result.output == 'done: coded | research: notes on find the api'


def test_unknown_instrumentation_is_a_clear_error(state_dir):
    with pytest.raises(UserError, match="unknown instrumentation 'logfire'"):
        build('bad-inst', instrumentation='logfire')


# ---------------------------------------------------------------- a real OTLP/HTTP receiver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.02)


@pytest.fixture
def receiver(tmp_path):
    """examples/scale_out/collector.py in its own process: OTLP/HTTP on a free loopback port."""
    port, out = _free_port(), tmp_path / 'received.jsonl'
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / 'examples' / 'scale_out' / 'collector.py'), '--port', str(port), '--out', str(out)],
        env={**os.environ},
    )

    def listening() -> bool:
        assert proc.poll() is None, 'the receiver exited'
        try:
            socket.create_connection(('127.0.0.1', port), timeout=0.2).close()
            return True
        except OSError:
            return False

    _wait_for(listening, 'the OTLP receiver to listen')
    yield port, out
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


def _received(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


@pytest.mark.anyio
async def test_a_run_reaches_a_real_otlp_receiver_as_one_connected_trace(state_dir, receiver, monkeypatch):
    port, out = receiver
    monkeypatch.setenv('OTEL_EXPORTER_OTLP_ENDPOINT', f'http://127.0.0.1:{port}')
    monkeypatch.setenv('OTEL_SERVICE_NAME', 'genai-otlp-test')
    team = build('genai-otlp', durable=True)
    result = await team.run('build it')
    await anyio.to_thread.run_sync(team.tracer_provider.force_flush)
    from proctor.tracing import TraceStore

    stored = TraceStore(team.store).spans_of_run(result.run_id)
    await anyio.to_thread.run_sync(lambda: _wait_for(lambda: len(_received(out)) >= len(stored), 'every span'))
    got = _received(out)

    trace_id = team.get_run(result.run_id).trace_id
    assert {s['trace_id'] for s in got} == {trace_id}
    assert Counter(s['name'] for s in got) == Counter(s.name for s in stored)
    assert {s['service'] for s in got} == {'genai-otlp-test'}
    # One connected tree: a single root (team.run), every other span's parent arrived too.
    ids = {s['span_id'] for s in got}
    [root] = [s for s in got if s['parent_span_id'] is None]
    assert root['name'] == 'team.run' and root['attributes']['proctor.run_id'] == result.run_id
    assert all(s['parent_span_id'] in ids for s in got if s is not root)
    by_name = {s['name']: s for s in got}
    chat = by_name['chat res-model']
    assert chat['kind'] == 3  # SPAN_KIND_CLIENT
    assert chat['attributes']['gen_ai.operation.name'] == 'chat'
    assert chat['attributes']['gen_ai.request.model'] == 'res-model'
    assert chat['attributes']['gen_ai.response.model'] == 'res-model'
    assert chat['attributes']['gen_ai.provider.name'] == 'function'
    assert chat['attributes']['gen_ai.usage.input_tokens'] > 0
    assert 'find the api' in chat['attributes']['gen_ai.input.messages']
    tool = by_name['execute_tool lookup']['attributes']
    assert tool['gen_ai.tool.name'] == 'lookup' and tool['gen_ai.tool.call.id']
    assert by_name['invoke_agent genai-otlp.coding']['attributes']['gen_ai.agent.name'] == 'genai-otlp.coding'
    # The delegation tree: coding's agent span under its delegation, under the supervisor's tool call.
    parent = {s['span_id']: s for s in got}
    coding = by_name['invoke_agent genai-otlp.coding']
    chain = []
    while coding['parent_span_id'] is not None:
        coding = parent[coding['parent_span_id']]
        chain.append(coding['name'])
    assert chain == [
        'delegate coding',
        'execute_tool delegate_to_coding',
        'invoke_agent genai-otlp.supervisor',
        'team.run',
    ]
