"""Provider failures that end a run read as one `ProviderError`: the specialist, each model tried and why.

Scripted provider errors (`fail(...)`) and real transports on loopback (a closed port: connection
refused; a socket that never answers: timeout) through pydantic-ai's OpenAI model.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_ai import models
from pydantic_ai.exceptions import FallbackExceptionGroup, ModelHTTPError

from proctor import ModelRegistry, ModelRouter, Specialist, Supervisor, Team
from proctor.exceptions import ProviderError, RunError
from proctor.state._records import RunRecords
from proctor.testing import ScriptedModel, delegate, fail, text, tool_results

pytestmark = pytest.mark.anyio
CLASSES = ['public', 'internal']


def boss() -> ScriptedModel:
    def answer(messages):
        return text(' | '.join(tool_results(messages))) if tool_results(messages) else delegate('worker', 'do it')

    return ScriptedModel(answer, name='boss-llm')


def failing(error: Exception, name: str) -> ScriptedModel:
    def answer(messages):
        raise error

    return ScriptedModel(answer, name=name)


def routed_team(primary: Exception, backup: Exception, **kw) -> Team:
    reg = ModelRegistry(
        {
            'boss': {'model': boss(), 'data_classes': CLASSES},
            'primary': {'model': failing(primary, 'primary-llm'), 'data_classes': CLASSES},
            'backup': {'model': failing(backup, 'backup-llm'), 'data_classes': CLASSES},
        }
    )
    policy = {
        'specialists': {'supervisor': {'preferred': 'boss'}, 'worker': {'preferred': 'primary', 'fallback': ['backup']}}
    }
    return Team(Supervisor(), [Specialist('worker', 'Work.')], router=ModelRouter(reg, policy), name='pe', **kw)


async def test_all_fallbacks_failing_is_one_provider_error_naming_the_specialist_and_each_model(state_dir):
    team = routed_team(fail(503, 'overloaded, try later'), fail(502, 'bad gateway'))
    with pytest.raises(ProviderError) as info:
        await team.run('go')
    err = info.value
    assert isinstance(err, RunError)
    assert err.specialist == 'worker'
    assert [(a['model'], a['reason']) for a in err.attempts] == [
        ('primary', 'HTTP 503: overloaded, try later'),
        ('backup', 'HTTP 502: bad gateway'),
    ]
    assert str(err) == (
        f"run {err.run_id}: specialist 'worker' got no model response (2 models tried): "
        'primary: HTTP 503: overloaded, try later; backup: HTTP 502: bad gateway'
    )
    assert '\n' not in str(err)
    # The provider's own exception stays chained; the run's record keeps both.
    assert isinstance(err.__cause__, FallbackExceptionGroup)
    rec = RunRecords(team.store).get(err.run_id)
    assert rec.status == 'failed'
    assert rec.error.startswith(f'ProviderError: {err}')
    assert '[caused by FallbackExceptionGroup' in rec.error and 'ModelHTTPError: ' in rec.error
    assert '\n' not in rec.error


def test_run_sync_raises_it_too_and_it_pickles(state_dir):
    team = routed_team(fail(500, 'boom'), fail(503, 'busy'), durable=False)
    with pytest.raises(ProviderError, match="specialist 'worker'.*primary: HTTP 500: boom; backup: HTTP 503: busy"):
        team.run_sync('go')
    err = ProviderError(specialist='s', attempts=[{'model': 'm', 'reason': 'r'}], run_id='x')
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.attempts) == (ProviderError, str(err), err.attempts)


@pytest.mark.parametrize(
    ('status', 'reason'),
    [
        (400, 'HTTP 400: bad request'),
        (401, 'HTTP 401 (check the API key): invalid api key'),
        (404, 'HTTP 404: no such model'),
    ],
)
async def test_a_4xx_stops_at_the_first_model_and_says_so(state_dir, status, reason):
    message = reason.rpartition(': ')[2]
    team = routed_team(fail(status, message), fail(503))
    with pytest.raises(ProviderError) as info:
        await team.run('go')
    assert [(a['model'], a['reason'], a['status']) for a in info.value.attempts] == [('primary', reason, status)]
    assert isinstance(info.value.__cause__, ModelHTTPError)


async def test_the_supervisors_own_model_failing_names_the_supervisor(state_dir):
    team = Team(
        Supervisor(model=failing(fail(429, 'rate limited'), 'sup-llm')),
        [Specialist('worker', 'Work.', model=boss())],
        name='pe2',
    )
    with pytest.raises(ProviderError, match="specialist 'supervisor'.*sup-llm: HTTP 429: rate limited"):
        await team.run('go')


def _closed_port() -> int:
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def compatible_team(base_url: str, **settings) -> Team:
    reg = ModelRegistry(
        {'srv': {'model': 'openai-compatible:served', 'base_url': base_url, 'compat': 'vllm', 'data_classes': CLASSES}}
    )
    return Team(
        Supervisor(model='srv', model_settings=settings or None),
        [Specialist('worker', 'Work.', model='srv')],
        router=ModelRouter(reg),
        name='pe3',
        durable=False,
    )


async def test_connection_refused_and_timeout_on_a_real_transport(state_dir):
    base = f'http://127.0.0.1:{_closed_port()}/v1'
    with models.override_allow_model_requests(True):
        with pytest.raises(ProviderError) as info:
            await compatible_team(base).run('go')
        assert info.value.attempts == [
            {
                'model': f'srv (openai-compatible:served at {base})',
                'reason': 'connection refused',
                'error': 'ModelConnectionError',
            }
        ]
        # A server that accepts the connection and never answers.
        with socket.socket() as silent:
            silent.bind(('127.0.0.1', 0))
            silent.listen(8)
            port = silent.getsockname()[1]
            with pytest.raises(ProviderError) as info:
                await compatible_team(f'http://127.0.0.1:{port}/v1', timeout=0.3).run('go')
    assert [a['reason'] for a in info.value.attempts] == ['timed out']


def test_the_cli_prints_one_line_and_exits_non_zero(state_dir, tmp_path):
    factory = Path(__file__).with_name('provider_fail_team.py')
    env = {**os.environ, 'PROCTOR_STATE_DIR': str(state_dir)}
    code = f'import runpy; t = runpy.run_path({str(factory)!r})["build_team"]()\ntry:\n    t.run_sync("go")\nexcept Exception as e:\n    print(e.run_id)'
    made = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=120)
    run_id = made.stdout.strip().splitlines()[-1]
    out = subprocess.run(
        [sys.executable, '-m', 'proctor', 'resume', run_id], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 1
    assert out.stdout == ''
    [line] = out.stderr.strip().splitlines()
    assert line == (
        f"error: run {run_id}: specialist 'worker' got no model response (1 model tried): "
        'worker-llm: HTTP 401 (check the API key): invalid x-api-key'
    )


async def test_chat_spans_name_the_provider_model_that_served_with_the_registry_id_as_proctor_attributes(state_dir):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reg = ModelRegistry(
        {
            'boss': {'model': boss(), 'version': 'b-1', 'data_classes': CLASSES},
            'primary': {'model': failing(fail(503, 'busy'), 'primary-llm'), 'data_classes': CLASSES},
            'backup': {'model': ScriptedModel([text('ok')], name='backup-llm'), 'data_classes': CLASSES},
        }
    )
    policy = {
        'specialists': {'supervisor': {'preferred': 'boss'}, 'worker': {'preferred': 'primary', 'fallback': ['backup']}}
    }
    team = Team(
        Supervisor(),
        [Specialist('worker', 'Work.')],
        router=ModelRouter(reg, policy),
        name='spans',
        tracer_provider=provider,
    )
    assert (await team.run('go')).output == 'ok'
    chats = [s for s in exporter.get_finished_spans() if s.attributes.get('gen_ai.operation.name') == 'chat']
    got = [
        (
            s.name,
            s.attributes.get('gen_ai.request.model'),
            s.attributes.get('gen_ai.response.model'),
            s.attributes.get('gen_ai.provider.name'),
            s.attributes.get('proctor.model_id'),
        )
        for s in sorted(chats, key=lambda s: s.start_time)
    ]
    assert got == [
        ('chat boss-llm', 'boss-llm', 'boss-llm', 'function', 'boss'),
        ('chat backup-llm', 'backup-llm', 'backup-llm', 'function', 'backup'),  # primary failed: backup served
        ('chat boss-llm', 'boss-llm', 'boss-llm', 'function', 'boss'),
    ]
    first = min(chats, key=lambda s: s.start_time)
    assert first.attributes['proctor.model_version'] == 'b-1'
    assert first.attributes['proctor.route_reason'].startswith('supervisor → boss')
    assert not any(s.name.startswith('chat route:') for s in exporter.get_finished_spans())


def test_models_check_prints_reachable_status_and_latency_per_model(tmp_path):
    base = f'http://127.0.0.1:{_closed_port()}/v1'
    cfg = tmp_path / 'proctor.toml'
    cfg.write_text(
        '[models.fake]\nmodel = "test"\ndata_classes = ["public"]\n\n'
        f'[models.gone]\nmodel = "openai-compatible:served"\nbase_url = "{base}"\ncompat = "llama.cpp"\n'
        'data_classes = ["public"]\n'
    )
    env = {**os.environ, 'COLUMNS': '200'}
    run = [sys.executable, '-m', 'proctor', 'models', 'check', '--config', str(cfg)]
    out = subprocess.run([*run, '--json'], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1  # one model did not answer
    import json

    rows = {r['model_id']: r for r in json.loads(out.stdout)['models']}
    assert (rows['fake']['reachable'], rows['fake']['status'], rows['fake']['detail']) == (
        True,
        'ok',
        'answered as test',
    )
    assert (rows['gone']['reachable'], rows['gone']['status'], rows['gone']['detail']) == (
        False,
        '-',
        'connection refused',
    )
    assert rows['gone']['model'] == f'openai-compatible:served at {base}'
    assert all(isinstance(r['latency_ms'], float) for r in rows.values())
    ok = subprocess.run([*run, 'fake'], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0
    assert ok.stdout.splitlines()[1].split() == ['id', 'model', 'reachable', 'status', 'latency', 'detail']
    assert ok.stdout.splitlines()[2].split()[:4] == ['fake', 'test', 'yes', 'ok']
    bad = subprocess.run([*run, 'nope'], capture_output=True, text=True, env=env, timeout=120)
    assert (bad.returncode, bad.stderr.strip()) == (
        1,
        f"error: unknown model 'nope' (known: fake, gone); not in the registry of {cfg}",
    )
