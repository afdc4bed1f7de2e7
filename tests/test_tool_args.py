"""Bad tool arguments never end a run: every one comes back to the model as a tool error it can
correct (`ModelRetry`), recorded with the run. Fuzzed with hypothesis over arbitrary strings and
JSON values, for the built-in workspace tools, called directly and from a running team."""

from __future__ import annotations

import json
import string
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_ai import ModelRetry
from pydantic_ai.messages import ModelRequest, RetryPromptPart, ToolReturnPart

from proctor import RunDeps, Supervisor, Team, coding
from proctor.testing import ScriptedModel, delegate, text, tool_call, tool_results
from proctor.tools import _files
from proctor.tools._journal import ToolJournal
from proctor.tracing import Recording
from proctor.tracing._store import TraceStore

# Text that file systems and commands choke on, mixed with ordinary text.
NASTY = ['\x00', '\udcff', '\ud800', 'a' * 300, 'a/' * 2100, '"', "'", '\\', '..', '/', '~', '\n', ' ', '*', '[']
nasty_text = st.lists(st.sampled_from(NASTY) | st.text(string.printable, max_size=8), max_size=6).map(''.join)
any_text = st.text() | nasty_text
# What a model's JSON can carry: no unpaired surrogates (pydantic's JSON parser refuses them; tools
# called directly still get them, above).
json_text = st.text(st.characters(exclude_categories=['Cs'])) | nasty_text.map(
    lambda s: s.encode('utf-8', 'replace').decode()
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | json_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _ctx(root: Any) -> Any:
    deps = RunDeps(run_id='fuzz', team='t', project='p', data_class='internal', agent_path='a', specialist='coding')
    return SimpleNamespace(deps=RunDeps(**{**deps.__dict__, 'workspace': str(root)}), tool_call_id='c', run_step=1)


def _call(fn: Any, *args: Any) -> Any:
    """Run tool `fn`: its result, or the `ModelRetry` it raised; anything else fails the test."""

    async def go() -> Any:
        try:
            return await fn(*args)
        except ModelRetry as e:
            return e

    return anyio.run(go)


@pytest.fixture
def root(tmp_path):
    (tmp_path / 'ws' / 'src').mkdir(parents=True)
    (tmp_path / 'ws' / 'src' / 'app.py').write_text('print("hi")\n')
    return tmp_path / 'ws'


@pytest.mark.parametrize(
    ('tool', 'args', 'says'),
    [
        (_files.read_file, ['notes\x00.md'], 'NUL byte'),
        (_files.read_file, ['a' * 300], 'too long'),
        (_files.read_file, ['a/' * 2100], 'too long'),
        (_files.read_file, ['\udcff.md'], 'not valid text'),
        (_files.read_file, ['src'], "no file 'src'"),
        (_files.write_file, ['x\x00.md', 'hi'], 'NUL byte'),
        (_files.write_file, ['ok.md', 'bad \udcff'], 'not valid text'),
        (_files.write_file, ['src/app.py/inner.txt', 'hi'], 'cannot write'),
        (_files.search_files, ['\x00'], 'NUL byte'),
        (_files.run_command, ['echo "unclosed'], 'cannot be parsed'),
        (_files.run_command, ['echo \x00'], 'NUL byte'),
        (_files.run_command, ['./src'], 'cannot run'),
        (_files.run_command, ['true ' + 'x' * 200_000], 'too long'),
        (_files.run_tests, ['t\x00.py'], 'NUL byte'),
    ],
)
def test_each_bad_argument_is_a_tool_error_naming_it(root, tool, args, says):
    out = _call(tool, _ctx(root), *args)
    assert isinstance(out, ModelRetry) and says in out.message, out


@FUZZ
@given(path=any_text, content=any_text, pattern=any_text)
def test_fuzzed_file_tools_return_or_ask_for_a_retry(root, path, content, pattern):
    ctx = _ctx(root)
    for fn, args in (
        (_files.read_file, [path]),
        (_files.write_file, [path, content]),
        (_files.list_files, [pattern]),
        (_files.search_files, [pattern]),
    ):
        out = _call(fn, ctx, *args)
        assert isinstance(out, (str, list, ModelRetry)), (fn.__name__, out)
    assert (root / 'src' / 'app.py').read_text() == 'print("hi")\n' or path.strip().startswith('src')


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=any_text)
def test_fuzzed_commands_return_or_ask_for_a_retry(root, args):
    out = _call(_files.run_command, _ctx(root), 'true ' + args)  # `true`: whatever the arguments, nothing runs
    assert isinstance(out, (str, ModelRetry)), out


TOOLS = ['read_file', 'write_file', 'list_files', 'search_files', 'run_command']


class Fuzzed:
    """A team whose coding specialist makes one tool call with the arguments a test sets, then answers."""

    def __init__(self, root: Any, *, durable: bool) -> None:
        self.call: tuple[str, Any] = ('list_files', {})
        self.seen: list[Any] = []

        def coder(messages: list[Any]) -> Any:
            if not any(isinstance(m, ModelRequest) and _answers(m) for m in messages):
                name, args = self.call
                return [tool_call(name, args)]
            self.seen.append(next(p for m in reversed(messages) if isinstance(m, ModelRequest) for p in _answers(m)))
            return text('coded')

        self.team = Team(
            Supervisor(model=ScriptedModel([[delegate('coding', 'go')], lambda m: text(' | '.join(tool_results(m)))])),
            [coding(ScriptedModel(coder, name='fuzz'), retries=3)],
            workspace=root,
            name=f'fuzz-{durable}',
            durable=durable,
        )

    def run(self, name: str, args: Any, run_id: str | None = None) -> Any:
        self.call = (name, args)
        return self.team.run_sync('fuzz the tools', run_id=run_id)


def _answers(m: ModelRequest) -> list[Any]:
    return [p for p in m.parts if isinstance(p, (RetryPromptPart, ToolReturnPart))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(TOOLS),
    # Arguments as a model sends them: an object of any values, any JSON text, text that is not JSON.
    args=st.dictionaries(st.sampled_from(['path', 'content', 'pattern', 'query', 'command']), json_values)
    | json_values.map(json.dumps)
    | json_text,
)
def test_no_fuzzed_tool_call_fails_a_run(root, state_dir, name, args):
    if name == 'run_command' and isinstance(args, dict) and isinstance(args.get('command'), str):
        args = {**args, 'command': 'true ' + args['command']}  # nothing but `true` ever runs
    fuzz = _team(root)
    result = fuzz.run(name, args)
    assert (result.status, result.output) == ('succeeded', 'coded')
    assert isinstance(fuzz.seen[-1], (RetryPromptPart, ToolReturnPart))  # the model was told the outcome


_teams: dict[str, Fuzzed] = {}


def _team(root: Any) -> Fuzzed:
    # One team per test (hypothesis runs many examples in one test): the team is built once.
    key = str(root)
    if key not in _teams:
        _teams.clear()
        _teams[key] = Fuzzed(root, durable=False)
    return _teams[key]


def test_a_nul_byte_in_a_path_is_told_to_the_model_and_recorded_in_a_durable_run(root, state_dir):
    fuzz = Fuzzed(root, durable=True)
    result = fuzz.run('read_file', {'path': 'notes\x00.md'}, run_id='nul-run')
    assert (result.status, result.output) == ('succeeded', 'coded')
    told = fuzz.seen[-1]
    # pydantic-ai's retry: the tool's message as the call's result, marked retried.
    assert getattr(told, 'outcome', 'retried') == 'retried' and 'contains a NUL byte' in str(told.content)
    rec = Recording.from_store(fuzz.team.store, 'nul-run')
    (err,) = [s.payload for s in rec.steps if s.kind == 'tool_error']
    assert (err['tool'], err['retry'], err['error_type']) == ('read_file', True, 'ModelRetry')
    assert 'contains a NUL byte' in err['message']
    # Refused before anything acted: a bad write leaves no journal row either.
    result = fuzz.run('write_file', {'path': 'a\x00', 'content': 'x'}, run_id='nul-write')
    assert result.status == 'succeeded' and ToolJournal(fuzz.team.store).list('nul-write') == []
    # The run's trace shows the tool call that was told to retry.
    spans = TraceStore(fuzz.team.store).spans_of_run('nul-run')
    tool_spans = [s for s in spans if 'read_file' in s.name]
    assert tool_spans and any('NUL byte' in json.dumps(s.events) + json.dumps(s.attributes) for s in tool_spans)
