"""The real-server tier: llama-cpp-python's OpenAI-compatible server on loopback, serving the packaged
SmolLM2 GGUF, registered in proctor.toml as `openai-compatible:smollm2` with `compat = "llama.cpp"`.

Each test starts `python -m llama_cpp.server` on a free 127.0.0.1 port and stops it by PID. It needs the
server's dependencies (FastAPI, starlette-context, ...: the `dev` extra) and the GGUF (the `local` extra);
without them the tier is skipped, and fails under `PROCTOR_REQUIRE_LOCAL_MODEL=1` (CI).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic_ai import models
from pydantic_ai.exceptions import ModelHTTPError

pytestmark = [pytest.mark.real_server, pytest.mark.anyio, pytest.mark.timeout(1800)]
SERVER_DEPS = ('llama_cpp', 'fastapi', 'starlette_context', 'sse_starlette', 'pydantic_settings', 'uvicorn', 'yaml')


def _gguf() -> Path:
    from proctor.exceptions import LocalModelUnavailable
    from proctor.models._local_model import WEIGHTS, gguf_path

    missing = [m for m in SERVER_DEPS if importlib.util.find_spec(m) is None]
    try:
        if missing:
            raise LocalModelUnavailable(f'llama_cpp.server needs {", ".join(missing)} (the dev extra)')
        return gguf_path(WEIGHTS['smollm2'])
    except LocalModelUnavailable as e:
        if os.environ.get('PROCTOR_REQUIRE_LOCAL_MODEL') == '1':
            pytest.fail(f'PROCTOR_REQUIRE_LOCAL_MODEL=1 but the real-server tier cannot run: {e}')
        pytest.skip(str(e))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class LlamaServer:
    def __init__(self, gguf: Path, log: Path, *, chat_format: str) -> None:
        self.port = _free_port()
        self.base_url = f'http://127.0.0.1:{self.port}/v1'
        self.log = log
        args = [sys.executable, '-m', 'llama_cpp.server', '--model', str(gguf), '--model_alias', 'smollm2']
        args += ['--host', '127.0.0.1', '--port', str(self.port), '--n_ctx', '2048', '--n_threads', '2']
        args += ['--chat_format', chat_format, '--verbose', 'False']
        self._log = log.open('w')
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f'llama_cpp.server exited {self.proc.returncode}: {self.log.read_text()[-2000:]}')
            try:
                if httpx.get(f'{self.base_url}/models', timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=0.2)  # wakes at once if the server dies while loading
        raise AssertionError(f'llama_cpp.server not ready in {timeout}s: {self.log.read_text()[-2000:]}')

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 15)  # by PID
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait()
        self._log.close()


@contextlib.contextmanager
def llama_server(tmp_path: Path, *, chat_format: str = 'chatml-function-calling') -> Iterator[LlamaServer]:
    server = LlamaServer(_gguf(), tmp_path / 'llama_server.log', chat_format=chat_format)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _config(tmp_path: Path, base_url: str, compat: str | None = 'llama.cpp') -> Path:
    cfg = tmp_path / 'proctor.toml'
    cfg.write_text(
        '[models.smollm2]\n'
        'model = "openai-compatible:smollm2"\n'
        f'base_url = "{base_url}"\n'
        + (f'compat = "{compat}"\n' if compat else '')
        + 'data_classes = ["public", "internal"]\n'
    )
    return cfg


async def test_the_server_refuses_null_tool_call_content_and_the_llama_cpp_preset_fixes_it(tmp_path):
    """What llama_cpp.server rejects, measured: the assistant tool-call message with `content: null`."""
    from pydantic_ai.direct import model_request
    from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart, UserPromptPart
    from pydantic_ai.models import ModelRequestParameters
    from pydantic_ai.tools import ToolDefinition

    from proctor.models._errors import reason_of
    from proctor.models._registry import ModelRegistry

    history = [
        ModelRequest(parts=[UserPromptPart('Find facts about Paris.')]),
        ModelResponse(parts=[ToolCallPart('lookup', {'topic': 'Paris'}, tool_call_id='call_1')]),
        ModelRequest(parts=[ToolReturnPart('lookup', 'Paris is the capital of France.', tool_call_id='call_1')]),
    ]
    params = ModelRequestParameters(
        function_tools=[
            ToolDefinition(
                name='lookup',
                parameters_json_schema={'type': 'object', 'properties': {'topic': {'type': 'string'}}},
            )
        ]
    )
    settings = {'max_tokens': 8, 'temperature': 0.0, 'tool_choice': 'none', 'max_retries': 0}
    with llama_server(tmp_path) as srv, models.override_allow_model_requests(True):
        plain = ModelRegistry(
            {'m': {'model': 'openai-compatible:smollm2', 'base_url': srv.base_url, 'data_classes': ['public']}}
        )
        with pytest.raises(ModelHTTPError) as info:
            await model_request(plain.model('m'), history, model_settings=settings, model_request_parameters=params)
        assert info.value.status_code == 500
        assert 'messages.1.content: Input should be a valid string' in reason_of(info.value)
        fixed = ModelRegistry(
            {
                'm': {
                    'model': 'openai-compatible:smollm2',
                    'base_url': srv.base_url,
                    'compat': 'llama.cpp',
                    'data_classes': ['public'],
                }
            }
        )
        response = await model_request(
            fixed.model('m'), history, model_settings=settings, model_request_parameters=params
        )
    assert response.model_name == 'smollm2'
    assert response.usage.input_tokens > 0


def _cli(state_dir: Path, cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, 'PROCTOR_STATE_DIR': str(state_dir), 'PROCTOR_LLAMA_CONFIG': str(cfg), 'COLUMNS': '200'}
    return subprocess.run(
        [sys.executable, '-m', 'proctor', *args], capture_output=True, text=True, env=env, timeout=600
    )


async def test_a_team_runs_end_to_end_on_the_server_then_usage_runs_traces_and_replay_work(
    tmp_path, state_dir, monkeypatch
):
    import real_server_team

    with llama_server(tmp_path) as srv:
        cfg = _config(tmp_path, srv.base_url)
        monkeypatch.setenv('PROCTOR_LLAMA_CONFIG', str(cfg))
        real_server_team.LOOKUPS.clear()
        team = real_server_team.build_team()
        with models.override_allow_model_requests(True):
            result = await team.run('Find facts about Paris.')
        team.close()
    # The server is stopped from here on: nothing below can reach a model.
    assert isinstance(result.output, str) and result.output.strip()
    assert [d.specialist for d in result.delegations] == ['research']
    assert len(real_server_team.LOOKUPS) == 1  # research called its tool once
    assert result.usage.requests >= 4 and result.usage.input_tokens > 0

    usage = _cli(state_dir, cfg, 'usage', '--run', result.run_id, '--json')
    assert usage.returncode == 0, usage.stderr
    assert 'smollm2' in usage.stdout

    shown = _cli(state_dir, cfg, 'runs', 'show', result.run_id)
    assert shown.returncode == 0, shown.stderr
    assert 'research' in shown.stdout and 'succeeded' in shown.stdout

    traces = _cli(state_dir, cfg, 'traces', 'show', result.run_id)
    assert traces.returncode == 0, traces.stderr
    assert 'chat smollm2' in traces.stdout and 'route:' not in traces.stdout

    replay = _cli(state_dir, cfg, 'replay', result.run_id, '--json')
    assert replay.returncode == 0, replay.stdout + replay.stderr
    report = json.loads(replay.stdout)
    assert report['live_model_calls'] == 0
    assert report['ok'] is True
