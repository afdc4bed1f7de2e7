"""Tracing: one trace per run with GenAI and proctor attributes, the local trace store, OTLP export,
and a resumed run continuing its trace."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from proctor import Specialist, Supervisor, Team
from proctor.cli._app import main as cli
from proctor.guardrails._protocol import Decision
from proctor.orchestrator import replay
from proctor.state._schema import runs, spans
from proctor.state._store import StateStore
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_call, tool_results
from proctor.tracing import TraceStore, audit_entries, flush_store, trace_tree, verify_audit

HERE = Path(__file__).resolve()


class NoSecrets:
    name = 'no-secrets'
    hooks = frozenset({'input'})

    def check(self, payload, ctx):
        if isinstance(payload, str) and 'secret' in payload:
            return Decision.redact(payload.replace('secret', '[redacted]'), 'secret word')
        return Decision.allow()


def lookup(topic: str) -> str:
    """Look a topic up."""
    return f'notes on {topic}'


def build_team(
    *, durable: bool = False, name: str = 'traced', gate: tuple[anyio.Event, anyio.Event] | None = None, **kw
) -> Team:
    def supervisor(messages):
        results = tool_results(messages)
        if not results:
            return [delegate('research', 'find the secret api'), delegate('coding', 'write it')]
        return text('done: ' + ' | '.join(sorted(results)))

    async def research(messages):
        if gate is not None:  # both delegations must be in flight at once
            gate[0].set()
            with anyio.fail_after(10):
                await gate[1].wait()
        done = tool_results(messages, 'lookup')
        if not done:
            return [tool_call('lookup', {'topic': last_user_prompt(messages)})]
        return text(f'research: {done[0]}')

    async def coding(messages):
        if gate is not None:
            gate[1].set()
            with anyio.fail_after(10):
                await gate[0].wait()
        return text(f'coding: {last_user_prompt(messages)}')

    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='sup-model')),
        [
            Specialist('research', 'Research.', model=ScriptedModel(research, name='res-model'), tools=[lookup]),
            Specialist('coding', 'Code.', model=ScriptedModel(coding, name='cod-model')),
        ],
        name=name,
        durable=durable,
        guardrails=[NoSecrets()],
        **kw,
    )


@pytest.fixture(autouse=True)
def _cli_keeps_logging_alone(monkeypatch):
    # The CLI points structlog at the current stderr; under pytest that is a capture file closed after
    # the test, and loggers cached meanwhile would write to it in later tests.
    monkeypatch.setattr('proctor.cli._app._configure_logging', lambda log_json: None)


@pytest.fixture
def exporter():
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    exp.provider = provider
    return exp


def _tree(finished) -> list:
    """Span names as nested (name, [children]) in start order."""
    by_parent: dict = {}
    ids = {s.context.span_id for s in finished}
    for s in finished:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(s)

    def build(pid):
        kids = sorted(by_parent.get(pid, []), key=lambda s: (s.start_time, s.name))
        return [(s.name, build(s.context.span_id)) for s in kids]

    return build(None)


def _sorted_tree(tree):
    return sorted((name, _sorted_tree(kids)) for name, kids in tree)


@pytest.mark.anyio
async def test_one_trace_per_run_with_genai_and_proctor_attributes(state_dir, exporter):
    team = build_team(tracer_provider=exporter.provider)
    result = await team.run('build the secret feature', project='shop', data_class='confidential')
    finished = exporter.get_finished_spans()

    assert len({s.context.trace_id for s in finished}) == 1
    assert _sorted_tree(_tree(finished)) == _sorted_tree(
        [
            (
                'team.run',
                [
                    (
                        'invoke_agent traced.supervisor',
                        [
                            ('chat sup-model', []),
                            (
                                'execute_tool delegate_to_research',
                                [
                                    (
                                        'delegate research',
                                        [
                                            (
                                                'invoke_agent traced.research',
                                                [
                                                    ('chat res-model', []),
                                                    ('execute_tool lookup', []),
                                                    ('chat res-model', []),
                                                ],
                                            ),
                                        ],
                                    ),
                                ],
                            ),
                            (
                                'execute_tool delegate_to_coding',
                                [
                                    ('delegate coding', [('invoke_agent traced.coding', [('chat cod-model', [])])]),
                                ],
                            ),
                            ('chat sup-model', []),
                        ],
                    ),
                ],
            ),
        ]
    )
    by_name = {}
    for s in finished:
        by_name.setdefault(s.name, []).append(s)
    [root] = by_name['team.run']
    assert {
        k: root.attributes[k]
        for k in (
            'proctor.run_id',
            'proctor.team',
            'proctor.project',
            'proctor.data_class',
            'proctor.model_id',
            'proctor.resumed',
        )
    } == {
        'proctor.run_id': result.run_id,
        'proctor.team': 'traced',
        'proctor.project': 'shop',
        'proctor.data_class': 'confidential',
        'proctor.model_id': 'sup-model',
        'proctor.resumed': False,
    }
    assert root.attributes['proctor.input_tokens'] > 0 and 'proctor.cost_usd' in root.attributes
    # The run's task was redacted before the root span existed: the decision still lands on it.
    [event] = [e for e in root.events if e.name == 'proctor.guardrail']
    assert dict(event.attributes) == {
        'hook': 'input',
        'guard': 'no-secrets',
        'decision': 'redact',
        'reason': 'secret word',
        'agent_path': 'supervisor',
    }
    [research] = by_name['delegate research']
    assert research.attributes['proctor.specialist'] == 'research'
    assert research.attributes['proctor.subtask'] == 'find the [redacted] api'
    assert research.attributes['proctor.model_id'] == 'res-model'
    assert research.attributes['proctor.route_reason'] == 'preferred model of the specialist'
    assert research.attributes['proctor.output_tokens'] > 0
    [tool_span] = by_name['execute_tool delegate_to_research']
    assert [e.attributes['agent_path'] for e in tool_span.events if e.name == 'proctor.guardrail'] == [
        'supervisor>research'
    ]
    chat = by_name['chat res-model'][0]
    assert chat.attributes['gen_ai.operation.name'] == 'chat'
    assert chat.attributes['gen_ai.request.model'] == 'res-model'
    assert chat.attributes['gen_ai.usage.input_tokens'] > 0
    assert by_name['execute_tool lookup'][0].attributes['gen_ai.tool.name'] == 'lookup'
    rec = team.get_run(result.run_id)
    assert rec.trace_id == format(root.context.trace_id, '032x')


@pytest.mark.anyio
async def test_parallel_delegations_are_sibling_spans(state_dir, exporter):
    gate = (anyio.Event(), anyio.Event())
    team = build_team(durable=True, name='traced-parallel', gate=gate, tracer_provider=exporter.provider)
    await team.run('go')
    finished = exporter.get_finished_spans()
    delegates = sorted((s for s in finished if s.name.startswith('delegate ')), key=lambda s: s.name)
    tools = {s.context.span_id: s for s in finished if s.name.startswith('execute_tool delegate_to_')}
    [supervisor] = [s for s in finished if s.name == 'invoke_agent traced-parallel.supervisor']
    assert [d.name for d in delegates] == ['delegate coding', 'delegate research']
    assert {tools[d.parent.span_id].parent.span_id for d in delegates} == {supervisor.context.span_id}
    a, b = delegates
    assert a.start_time < b.end_time and b.start_time < a.end_time  # they overlapped in time


@pytest.mark.anyio
async def test_trace_store_is_always_on_and_cli_shows_it(state_dir, capsys, monkeypatch):
    monkeypatch.setenv('COLUMNS', '200')
    team = build_team(name='stored')  # no tracer provider: the local trace store is on anyway
    result = await team.run('build the secret feature')
    view = trace_tree(team.store, result.run_id[:10])
    assert [n.name for n in view.roots] == ['team.run']
    names = [n.name for n in view.roots[0].walk()]
    assert names.count('delegate research') == 1 and names.count('chat sup-model') == 2
    root = view.roots[0]
    assert root.events[0]['name'] == 'proctor.guardrail' and root.duration_ms is not None

    cli(['traces', 'show', result.run_id, '--json'])
    shown = json.loads(capsys.readouterr().out)
    assert shown['run_id'] == result.run_id and shown['trace_id'] == view.trace_id
    [tree_root] = shown['tree']
    assert tree_root['name'] == 'team.run' and tree_root['details']['model'] == 'sup-model'

    cli(['traces', 'list', '--json'])
    [row] = json.loads(capsys.readouterr().out)
    assert row['run_id'] == result.run_id and row['spans'] == len(names) and row['team'] == 'stored'

    cli(['traces', 'show', result.run_id])
    out = capsys.readouterr().out
    assert 'guardrail input no-secrets: redact' in out and 'delegate research' in out and 'tokens' in out


@pytest.mark.anyio
async def test_one_provider_for_two_stores_keeps_each_run_in_its_own_store(tmp_path, exporter):
    a = build_team(name='store-a', state_dir=tmp_path / 'a', tracer_provider=exporter.provider)
    b = build_team(name='store-b', state_dir=tmp_path / 'b', tracer_provider=exporter.provider)
    ra, rb = await a.run('one'), await b.run('two')
    flush_store(a.store)
    flush_store(b.store)
    with a.store.engine.connect() as c:
        in_a = {r.run_id for r in c.execute(sa.select(spans.c.run_id).distinct())}
    with b.store.engine.connect() as c:
        in_b = {r.run_id for r in c.execute(sa.select(spans.c.run_id).distinct())}
    assert in_a == {ra.run_id} and in_b == {rb.run_id}
    assert len(TraceStore(a.store).spans_of_run(ra.run_id)) == len(exporter.get_finished_spans()) // 2


class _Collector(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        self.server.posts.append((self.path, body))  # type: ignore[attr-defined]
        self.server.got.set()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header('Content-Type', 'application/x-protobuf')
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    server = http.server.HTTPServer(('127.0.0.1', 0), _Collector)
    server.posts = []
    server.got = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _exported(posts) -> list:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    out = []
    for _, body in posts:
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        out += [sp for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    return out


@pytest.mark.anyio
async def test_traces_export_resends_a_stored_run_to_a_collector(state_dir, collector, capsys):
    team = build_team(name='export')
    result = await team.run('go')
    port = collector.server_address[1]
    await anyio.to_thread.run_sync(
        lambda: cli(['traces', 'export', result.run_id, '--otlp', f'http://127.0.0.1:{port}'])
    )
    assert 'exported' in capsys.readouterr().out
    [(path, _)] = collector.posts
    assert path == '/v1/traces'
    sent = _exported(collector.posts)
    stored = TraceStore(team.store).spans_of_run(result.run_id)
    assert sorted(s.name for s in sent) == sorted(s.name for s in stored)
    assert {s.trace_id.hex() for s in sent} == {team.get_run(result.run_id).trace_id}
    root = next(s for s in sent if s.name == 'team.run')
    assert {a.key: a.value.string_value for a in root.attributes if a.key == 'proctor.run_id'} == {
        'proctor.run_id': result.run_id
    }


def test_traces_export_bad_url_is_one_line_error(state_dir, capsys):
    with pytest.raises(SystemExit) as e:
        cli(['traces', 'export', 'nope', '--otlp', 'ftp://x'])
    assert e.value.code == 1
    assert capsys.readouterr().err.strip() == "error: --otlp 'ftp://x' is not an http(s) URL"


@pytest.mark.anyio
async def test_otlp_exporter_is_on_when_the_endpoint_is_set(state_dir, collector, monkeypatch):
    monkeypatch.setenv('OTEL_EXPORTER_OTLP_ENDPOINT', f'http://127.0.0.1:{collector.server_address[1]}')
    team = build_team(name='otlp-env')
    result = await team.run('go')
    await anyio.to_thread.run_sync(team.tracer_provider.force_flush)
    assert collector.got.is_set()
    sent = _exported(collector.posts)
    assert 'team.run' in {s.name for s in sent} and len(sent) == len(TraceStore(team.store).spans_of_run(result.run_id))


# ---------------------------------------------------------------- resumed run: one trace


def build_gated_team() -> Team:
    """Rebuilt in each process: coding waits while $TRACE_GATE exists (the first process dies there)."""

    async def supervisor(messages):
        results = tool_results(messages)
        if not results:
            return [delegate('research', 'find'), delegate('coding', 'write')]
        return text('done: ' + ' | '.join(sorted(results)))

    async def coding(messages):
        Path(os.environ['TRACE_CODING_STARTED']).touch()
        while Path(os.environ['TRACE_GATE']).exists():
            await anyio.sleep(0.02)
        return text('coded')

    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='sup-model')),
        [
            Specialist('research', 'Research.', model=ScriptedModel(lambda m: text('found'), name='res-model')),
            Specialist('coding', 'Code.', model=ScriptedModel(coding, name='cod-model')),
        ],
        name='traced-resume',
        factory=f'{HERE}:build_gated_team',
    )


def _wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_resumed_run_continues_its_trace(state_dir, tmp_path, monkeypatch):
    gate, started = tmp_path / 'gate', tmp_path / 'coding-started'
    gate.touch()
    monkeypatch.setenv('TRACE_GATE', str(gate))
    monkeypatch.setenv('TRACE_CODING_STARTED', str(started))
    run_id = 'resumed-trace-run'
    code = (
        'from proctor.orchestrator._live import load_factory; '
        f'load_factory({str(HERE) + ":build_gated_team"!r}).run_sync("go", run_id={run_id!r})'
    )
    proc = subprocess.Popen(
        [sys.executable, '-c', code], env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    store = StateStore(state_dir)

    def root_stored() -> bool:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode()[-2000:])
        try:
            with store.engine.connect() as c:
                return (
                    c.execute(
                        sa.select(spans.c.span_id).where(spans.c.run_id == run_id, spans.c.name == 'team.run')
                    ).first()
                    is not None
                )
        except sa.exc.OperationalError:
            return False

    try:
        await anyio.to_thread.run_sync(
            lambda: _wait_for(lambda: started.exists() and root_stored(), 'the first process to reach coding')
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    gate.unlink()

    from proctor.orchestrator._live import load_factory

    team = load_factory(f'{HERE}:build_gated_team')
    result = await team.resume(run_id)
    assert result.output == 'done: coded | found'

    with store.engine.connect() as c:
        trace_id = c.execute(sa.select(runs.c.trace_id).where(runs.c.run_id == run_id)).scalar_one()
    stored = TraceStore(team.store).spans_of_run(run_id)
    assert {s.trace_id for s in stored} == {trace_id}  # one trace across both processes
    roots = [s for s in stored if s.name == 'team.run']
    first = min(roots, key=lambda s: s.start_ns)
    assert first.end_ns is None and first.parent_id is None  # its process died before it ended
    [resumed] = [s for s in roots if s is not first]
    assert resumed.attributes['proctor.resumed'] is True and resumed.parent_id == first.span_id
    # The coding delegation (a child workflow recovered on its own) joins the same trace.
    [coding] = [s for s in stored if s.name == 'delegate coding' and s.end_ns is not None]
    assert coding.trace_id == trace_id
    view = trace_tree(team.store, run_id)
    assert [n.name for n in view.roots] == ['team.run'] and view.roots[0].duration_ms is None
    # Each model call is audited once: research finished in the first process (its workflow is not
    # run again), the recovered steps' hooks ran again without appending twice.
    calls = sorted(
        (e.record['agent_path'], e.record['call_key'].rpartition('#')[2])
        for e in audit_entries(team.store, run_id=run_id)
    )
    assert calls == [
        ('supervisor', 'model:1'),
        ('supervisor', 'model:2'),
        ('supervisor>coding', 'model:1'),
        ('supervisor>research', 'model:1'),
    ]
    assert verify_audit(team.store).ok
    report = await replay(run_id, team=team)  # and the run replays: every step was recorded once
    assert report.ok and report.live_model_calls == 0, report.summary()


@pytest.mark.anyio
async def test_prompts_stay_out_of_spans_when_trace_content_is_off(state_dir, exporter, monkeypatch):
    monkeypatch.setenv('PROCTOR_TRACE_CONTENT', '0')
    team = build_team(name='no-content', tracer_provider=exporter.provider)
    await team.run('build the secret feature')
    chats = [s for s in exporter.get_finished_spans() if s.name.startswith('chat ')]
    assert chats and not any('build the' in str(v) for s in chats for v in s.attributes.values())
    assert all(s.attributes['gen_ai.usage.input_tokens'] > 0 for s in chats)  # usage and models are still there
