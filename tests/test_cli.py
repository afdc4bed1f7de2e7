"""The `proctor` command: run listing, one-line errors with non-zero exits, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from proctor.cli import main


def cli(*args: str, env_state=None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, '-m', 'proctor', *(['--state-dir', str(env_state)] if env_state else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_runs_list_and_show(state_dir, capsys):
    from proctor import Specialist, Supervisor, Team
    from proctor.testing import ScriptedModel, delegate, text

    team = Team(
        Supervisor(model=ScriptedModel([[delegate('research', 'look')], text('all done')])),
        [Specialist('research', 'Research.', model=ScriptedModel(['found it']))],
        name='cli-team',
        durable=False,
    )
    run = team.run_sync('find things', project='proj')

    main(['runs', 'list', '--json'])
    [row] = json.loads(capsys.readouterr().out)
    assert (row['run_id'], row['team'], row['project'], row['status']) == (run.run_id, 'cli-team', 'proj', 'succeeded')

    main(['runs', 'show', run.run_id[:8], '--json'])
    shown = json.loads(capsys.readouterr().out)
    assert shown['output'] == 'all done'
    assert [(d['specialist'], d['output']) for d in shown['delegations']] == [('research', 'found it')]

    main(['runs', 'show', run.run_id])
    text_out = capsys.readouterr().out
    assert 'supervisor>research' in text_out and 'all done' in text_out


@pytest.mark.parametrize(
    'args,message',
    [
        (['runs', 'show', 'no-such-run'], "error: unknown run 'no-such-run'"),
        (['resume', 'no-such-run'], "error: unknown run 'no-such-run'"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    out = cli(*args, env_state=tmp_path / 'state')
    assert out.returncode == 1
    assert out.stderr.strip() == message
    assert 'Traceback' not in out.stderr + out.stdout


def test_unusable_state_dir_is_named(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    out = cli('runs', 'list', env_state=blocker / 'state')
    assert out.returncode == 1
    assert out.stderr.startswith(f'error: cannot create state dir {blocker / "state"}')
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_command_is_a_usage_error(tmp_path):
    out = cli('frobnicate', env_state=tmp_path / 's')
    assert out.returncode == 2 and 'Traceback' not in out.stderr
