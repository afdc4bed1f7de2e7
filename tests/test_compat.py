"""`compat` presets for OpenAI-compatible servers: what goes on the wire, read by a loopback server.

The server here answers like an OpenAI-compatible one (a tool call first, then text) and keeps every
request body, so each test reads what pydantic-ai sent under the preset's profile.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic_ai import models

from proctor import ModelRegistry, ModelRouter, Specialist, Supervisor, Team
from proctor.exceptions import ConfigError
from proctor.models._compat import PRESETS, Compat, compat_profile

pytestmark = pytest.mark.anyio


class _Server:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers['content-length'])))
                bodies.append(body)
                if len(bodies) == 1:  # the supervisor's first turn: a delegation
                    message = {
                        'role': 'assistant',
                        'content': None,
                        'tool_calls': [
                            {
                                'id': 'call_1',
                                'type': 'function',
                                'function': {'name': 'delegate_to_worker', 'arguments': '{"subtask": "x"}'},
                            }
                        ],
                    }
                else:
                    message = {'role': 'assistant', 'content': f'answer {len(bodies)}'}
                reply = {
                    'id': 'c',
                    'object': 'chat.completion',
                    'created': 0,
                    'model': body['model'],
                    'choices': [{'index': 0, 'message': message, 'finish_reason': 'stop'}],
                    'usage': {'prompt_tokens': 3, 'completion_tokens': 2, 'total_tokens': 5},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header('content-type', 'application/json')
                self.send_header('content-length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _team(url: str, compat) -> Team:
    entry = {'model': 'openai-compatible:served', 'base_url': url, 'data_classes': ['internal']}
    if compat is not None:
        entry['compat'] = compat
    return Team(
        Supervisor(model='srv', model_settings={'max_tokens': 50}),
        [Specialist('worker', 'Work.', model='srv')],
        router=ModelRouter(ModelRegistry({'srv': entry})),
        name='compat',
        durable=False,
    )


def _assistant_tool_message(body: dict) -> dict:
    return next(m for m in body['messages'] if m['role'] == 'assistant' and m.get('tool_calls'))


async def test_llama_cpp_preset_sends_empty_content_and_max_tokens(state_dir):
    with _Server() as srv, models.override_allow_model_requests(True):
        result = await _team(srv.url, 'llama.cpp').run('go')
    assert result.output == 'answer 3'
    first, _, last = srv.bodies
    assert (first.get('max_tokens'), 'max_completion_tokens' in first) == (50, False)
    assert _assistant_tool_message(last)['content'] == ''  # llama-cpp-python's server refuses null (a 500)


async def test_without_compat_pydantic_ais_openai_defaults_go_out(state_dir):
    with _Server() as srv, models.override_allow_model_requests(True):
        await _team(srv.url, None).run('go')
    first, _, last = srv.bodies
    assert (first.get('max_completion_tokens'), 'max_tokens' in first) == (50, False)
    assert _assistant_tool_message(last)['content'] is None


async def test_a_preset_with_overrides_and_the_provider_name(state_dir):
    with _Server() as srv, models.override_allow_model_requests(True):
        team = _team(srv.url, {'preset': 'vllm', 'max_tokens_field': 'max_completion_tokens', 'strict_tools': True})
        await team.run('go')
        model = team.router.registry.model('srv')
    first = srv.bodies[0]
    assert first['max_completion_tokens'] == 50
    assert first['tools'][0]['function'].get('strict') is True
    assert model.system == 'vllm'  # gen_ai.provider.name of its chat spans


def test_presets_map_onto_pydantic_ai_profile_keys():
    assert compat_profile(Compat.model_validate('llama.cpp')) == {
        'supports_forced_tool_choice': False,
        'openai_chat_supports_max_completion_tokens': False,
        'default_structured_output_mode': 'tool',
        'supports_json_schema_output': False,
        'supports_json_object_output': True,
    }
    assert compat_profile(Compat.model_validate('openai')) == {}
    assert compat_profile(Compat.model_validate('vllm'))['openai_chat_supports_multiple_system_messages'] is False
    assert set(PRESETS) == {'openai', 'llama.cpp', 'ollama', 'vllm'}


@pytest.mark.parametrize(
    ('compat', 'message'),
    [
        ('lmstudio', "models.srv.compat.preset: Input should be 'openai', 'llama.cpp', 'ollama' or 'vllm'"),
        ({'preset': 'vllm', 'max_token_field': 'x'}, 'models.srv.compat.max_token_field: unknown key'),
        (
            {'preset': 'llama.cpp', 'structured_output': 'native'},
            'models.srv.compat: structured_output = "native" needs json_schema_output',
        ),
    ],
)
def test_bad_compat_settings_name_the_key(compat, message):
    with pytest.raises(ConfigError, match='^' + message.replace('(', r'\(').replace('"', '"')):
        ModelRegistry(
            {
                'srv': {
                    'model': 'openai-compatible:x',
                    'base_url': 'http://127.0.0.1:1/v1',
                    'compat': compat,
                    'data_classes': ['public'],
                }
            }
        )
    with pytest.raises(ConfigError, match='compat is only for model = "openai-compatible:<name>"'):
        ModelRegistry({'m': {'model': 'test', 'compat': 'vllm', 'data_classes': ['public']}})
