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
        (
            ['resume', 'no-such-run'],
            "error: unknown run 'no-such-run': nothing of it was recorded (a process stopped before it recorded "
            'the run leaves nothing to resume); start it again with the same run id: team.run(task, run_id=...)',
        ),
        (['approvals', 'list', '--run', 'no-such-run'], "error: unknown run 'no-such-run'"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    (tmp_path / 'state').mkdir()
    out = cli(*args, env_state=tmp_path / 'state')
    assert out.returncode == 1
    assert out.stderr.strip() == message
    assert 'Traceback' not in out.stderr + out.stdout


def test_unusable_state_dir_is_named(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    out = cli('runs', 'list', env_state=blocker)
    assert out.returncode == 1
    assert out.stderr == f'error: state dir {blocker} is not a directory\n'
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_command_is_a_usage_error(tmp_path):
    out = cli('frobnicate', env_state=tmp_path / 's')
    assert out.returncode == 2 and 'Traceback' not in out.stderr


def test_resume_of_a_run_another_live_process_holds_is_refused(tmp_path):
    """`proctor resume` on a run that a live process is executing refuses in one line instead of running it twice."""
    import os
    import signal
    import socket
    import time
    from pathlib import Path

    team_file = Path(__file__).with_name('resume_team.py')
    calls, gate, state = tmp_path / 'calls', tmp_path / 'gate', tmp_path / 'state'
    env = {**os.environ, 'RESUME_CALLS': str(calls), 'RESUME_GATE': str(gate), 'PROCTOR_STATE_DIR': str(state)}
    gate.touch()  # the coding model waits while the gate exists
    holder = subprocess.Popen(
        [sys.executable, str(team_file), 'ship it', 'run-held-1'],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (calls.exists() and 'coding' in calls.read_text().split()):
            assert holder.poll() is None and time.monotonic() < deadline, 'the run never reached its coding delegation'
            time.sleep(0.05)

        out = subprocess.run(
            [sys.executable, '-m', 'proctor', 'resume', 'run-held-1'],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 1 and 'Traceback' not in out.stderr
        assert out.stderr.strip() == (
            f'error: run run-held-1 is running in process {holder.pid} on {socket.gethostname()} '
            f'(executor {out.stderr.split("(executor ")[1].split(")")[0]}): resume it only if that process stops'
        )
        assert f'proctor-{socket.gethostname()}-{holder.pid}-' in out.stderr

        gate.unlink()
        stdout, stderr = holder.communicate(timeout=120)
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
    assert holder.returncode == 0, stderr
    assert stdout.strip() == 'done: research:find the api | coding:write the code'
    # Each model call happened once: the refused resume ran nothing.
    assert calls.read_text().split() == ['supervisor:0', 'research', 'supervisor:1', 'coding', 'supervisor:2']


def test_who_holds_a_run_is_judged_by_heartbeat_or_process(state_dir):
    """What `proctor resume` asks of a run's holder: a worker by its heartbeat, a plain process by its pid."""
    import os
    import socket

    import sqlalchemy as sa

    from proctor.state._heartbeats import Heartbeats
    from proctor.state._schema import workers
    from proctor.state._store import StateStore

    store = StateStore()
    store.migrate()
    beats = Heartbeats(store)
    beats.register('worker-a', queue='runs', concurrency=2)
    here, me = socket.gethostname(), os.getpid()
    assert beats.executor_alive('worker-a') == (True, f'worker worker-a (pid {me} on {here})')
    with store.engine.begin() as c:  # silent for a minute: dead
        c.execute(workers.update().values(heartbeat_at=workers.c.heartbeat_at - 60))
    assert beats.executor_alive('worker-a')[0] is False
    beats.register('worker-b', queue='runs', concurrency=2)
    beats.stopped('worker-b')
    assert beats.executor_alive('worker-b')[0] is False

    gone = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    assert beats.executor_alive(f'proctor-{here}-{me}-abc12345') == (
        True,
        f'process {me} on {here} (executor proctor-{here}-{me}-abc12345)',
    )
    assert beats.executor_alive(f'proctor-{here}-{dead_pid}-abc12345')[0] is False
    assert beats.executor_alive(f'proctor-elsewhere-{me}-abc12345')[0] is None  # another host: cannot tell
    assert beats.executor_alive(f'proctor-{me}-abc12345', same_machine=True)[0] is True  # older ids, SQLite
    assert beats.executor_alive('someone-else')[0] is None
    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(workers)).scalar_one() == 2


def _run_with_markup_in_its_text():
    from proctor import Specialist, Supervisor, Team
    from proctor.testing import ScriptedModel, delegate, text

    team = Team(
        Supervisor(
            model=ScriptedModel([[delegate('research', 'look at [/] and [bold]x')], text('done [red]not red[/] [/]')])
        ),
        [Specialist('research', 'Research.', model=ScriptedModel(['found [/red] it']))],
        name='tags[/]',
        durable=False,
    )
    return team.run_sync('fix [/] the [bold]bug', project='p[x]')


def test_recorded_text_that_looks_like_markup_is_printed_as_written(state_dir, capsys, monkeypatch):
    """Tasks and outputs are data: a `[/]` in them neither crashes a command nor vanishes from its output."""
    monkeypatch.delenv('COLUMNS', raising=False)
    run = _run_with_markup_in_its_text()

    main(['runs', 'list'])
    out = capsys.readouterr().out
    assert 'tags[/]' in out and 'p[x]' in out and 'fix [/] the [bold]bug' in out and run.run_id[:12] in out

    main(['runs', 'show', run.run_id[:8]])
    out = capsys.readouterr().out
    assert f'{run.run_id} tags[/]/p[x] [internal] succeeded' in out
    assert 'supervisor>research [succeeded] model=scripted' in out
    assert 'look at [/] and [bold]x → found [/red] it' in out
    assert 'output: done [red]not red[/] [/]' in out

    main(['traces', 'list'])
    assert 'fix [/] the [bold]bug' in capsys.readouterr().out
    main(['traces', 'show', run.run_id])
    out = capsys.readouterr().out
    assert '[internal]' in out and '"look at [/] and [bold]x"' in out


@pytest.mark.parametrize(
    'args',
    [
        ['runs', 'list'],
        ['runs', 'show', 'r1'],
        ['resume', 'r1'],
        ['traces', 'list'],
        ['traces', 'show', 'r1'],
        ['replay', 'r1'],
        ['usage'],
        ['models', 'attempts', 'r1'],
        ['approvals', 'list'],
        ['approvals', 'show', 'a1'],
        ['workers'],
        ['audit', 'list'],
    ],
)
def test_read_commands_name_a_missing_state_dir_instead_of_showing_nothing(tmp_path, monkeypatch, capsys, args):
    """A mistyped state dir is an error naming it, not an empty listing (nor a new empty state dir)."""
    missing = tmp_path / 'no-such-state'
    monkeypatch.setenv('PROCTOR_STATE_DIR', str(missing))
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 1
    assert capsys.readouterr().err == (
        f'error: no state dir at {missing}: nothing has run there (pass --state-dir DIR or set PROCTOR_STATE_DIR)\n'
    )
    assert not missing.exists()


def test_an_empty_state_dir_says_so(state_dir, capsys):
    state_dir.mkdir()
    main(['runs', 'list'])
    assert capsys.readouterr().out == 'no runs\n'
    main(['traces', 'list'])
    assert capsys.readouterr().out == 'no traces\n'


def test_run_list_rows_fit_the_terminal_and_stay_whole_in_a_pipe(state_dir, capsys, monkeypatch):
    from proctor import Specialist, Supervisor, Team
    from proctor.testing import ScriptedModel, text

    task = 'Refactor the billing module so that invoices are generated per account and per month ' * 2
    team = Team(
        Supervisor(model=ScriptedModel([text('ok')])),
        [Specialist('research', 'R.', model=ScriptedModel(['x']))],
        name='fit',
        durable=False,
    )
    run = team.run_sync(task.strip(), project='billing')

    monkeypatch.delenv('COLUMNS', raising=False)
    main(['runs', 'list'])
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ['run', 'team', 'project', 'status', 'started', 'duration', 'tokens', 'cost', '$', 'task']
    assert row.startswith(f'{run.run_id[:12]}  fit ') and row.endswith(task.strip())

    monkeypatch.setenv('COLUMNS', '110')  # a terminal: the task gives way
    main(['runs', 'list'])
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 110 for line in lines), lines
    assert lines[1].startswith(f'{run.run_id[:12]}  fit ') and lines[1].endswith('…')


def test_usage_of_one_run_takes_a_prefix_and_names_an_unknown_run(state_dir, capsys):
    from proctor import Specialist, Supervisor, Team
    from proctor.testing import ScriptedModel, text

    team = Team(
        Supervisor(model=ScriptedModel([text('ok')])),
        [Specialist('research', 'R.', model=ScriptedModel(['x']))],
        name='u',
        durable=False,
    )
    run = team.run_sync('count', project='p')
    main(['usage', '--run', run.run_id[:8], '--json'])
    assert json.loads(capsys.readouterr().out)['run'] == run.run_id
    with pytest.raises(SystemExit) as e:
        main(['usage', '--run', 'nope'])
    assert e.value.code == 1 and capsys.readouterr().err == "error: unknown run 'nope'\n"


def test_help_shows_the_toml_tables_it_names():
    """Help texts are not rich markup: `[operators.NAME]` is printed, not swallowed as a style tag."""
    import os

    env = {**os.environ, 'COLUMNS': '200'}
    token = subprocess.run(
        [sys.executable, '-m', 'proctor', 'operator-token', '--help'],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert token.returncode == 0 and 'and the [operators.NAME] table (hash only) for proctor.toml' in token.stdout
    console = subprocess.run(
        [sys.executable, '-m', 'proctor', 'console', '--help'], capture_output=True, text=True, env=env, timeout=60
    )
    assert console.returncode == 0 and 'TOML file with the [operators.*] tables' in console.stdout


def test_trace_export_to_an_unreachable_collector_is_one_line(state_dir, capsys):
    """The exporter's own retry warnings are not printed: the operator gets one line naming the collector."""
    import socket

    from proctor import Specialist, Supervisor, Team
    from proctor.testing import ScriptedModel, text

    team = Team(
        Supervisor(model=ScriptedModel([text('ok')])),
        [Specialist('research', 'R.', model=ScriptedModel(['x']))],
        name='export',
        durable=False,
    )
    run = team.run_sync('trace me', project='p')
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(['traces', 'export', run.run_id, '--otlp', f'http://127.0.0.1:{port}', '--timeout', '1'])
    err = capsys.readouterr().err
    assert e.value.code == 1
    assert err.startswith(f'error: the collector at http://127.0.0.1:{port}/v1/traces did not accept the ')
    assert err.endswith('(is it running and reachable? gave up after 1s)\n') and err.count('\n') == 1


def test_version(capsys):
    import proctor

    main(['--version'])
    assert capsys.readouterr().out == f'proctor {proctor.__version__}\n'
