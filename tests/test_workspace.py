"""Workspace tools stay inside the workspace; commands run with a timeout and an output cap."""

from __future__ import annotations

import os

import pytest

from proctor import Supervisor, Team, Workspace, WorkspaceError
from proctor.testing import ScriptedModel, delegate, text, tool_call, tool_results
from proctor.tools._command import run_command

pytestmark = pytest.mark.anyio


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / 'ws'
    (root / 'src').mkdir(parents=True)
    (root / 'src' / 'app.py').write_text('def greet():\n    return "hi"\n')
    (tmp_path / 'secret.txt').write_text('top secret')
    return Workspace.open(root)


@pytest.mark.parametrize('path', ['../secret.txt', '/etc/passwd', 'src/../../secret.txt', '~/x', ''])
def test_paths_that_escape_are_refused(ws, path):
    with pytest.raises(WorkspaceError):
        ws.resolve(path)


def test_symlink_pointing_out_is_refused(ws, tmp_path):
    os.symlink(tmp_path / 'secret.txt', ws.root / 'link.txt')
    with pytest.raises(WorkspaceError, match="'link.txt' escapes the workspace"):
        ws.read_text('link.txt')


def test_read_write_list_search(ws):
    assert ws.list_files('*.py') == ['src/app.py']
    assert ws.write_text('src/new.py', 'X = 1\n') == 6
    assert ws.read_text('src/new.py') == 'X = 1\n'
    assert ws.search('greet') == ['src/app.py:1: def greet():']
    with pytest.raises(WorkspaceError, match="no file 'nope.py'"):
        ws.read_text('nope.py')


async def test_command_timeout_and_output_cap(ws):
    r = await run_command(['python', '-c', 'print("x" * 50000)'], cwd=ws.root, output_cap=100)
    assert r.exit_code == 0 and len(r.output) < 200 and r.output.startswith('[... ')
    slow = await run_command(['python', '-c', 'import time; time.sleep(30)'], cwd=ws.root, timeout=0.5)
    assert slow.timed_out and slow.exit_code is None


async def test_coding_specialist_writes_inside_and_is_told_when_it_escapes(ws, state_dir):
    from proctor import coding

    def coder(messages):
        seen = tool_results(messages)
        if not seen:
            return [tool_call('write_file', {'path': '../evil.py', 'content': 'x'})]
        if len(seen) == 1:
            return [tool_call('write_file', {'path': 'src/feature.py', 'content': 'def f():\n    return 1\n'})]
        return text('wrote src/feature.py; first attempt said: ' + seen[0])

    team = Team(
        Supervisor(model=ScriptedModel([[delegate('coding', 'add f')], lambda m: text(tool_results(m)[0])])),
        [coding(ScriptedModel(coder))],
        workspace=ws.root,
        name='ws-team',
        durable=False,
    )
    result = await team.run('add f')
    assert (ws.root / 'src' / 'feature.py').read_text() == 'def f():\n    return 1\n'
    assert not (ws.root.parent / 'evil.py').exists()
    assert 'escapes the workspace' in result.output
