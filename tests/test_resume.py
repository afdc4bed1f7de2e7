"""Kill a durable run mid-flight (SIGKILL, after its first delegation) and resume it in a new process:
the finished model calls are not made again: the run's recording, the checkpoint of model responses,
serves them (tests/test_crash.py kills runs mid side effect and mid approval)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from crash_harness import wait_for

pytestmark = pytest.mark.slow
TEAM = Path(__file__).with_name('resume_team.py')


def test_killed_run_resumes_without_repeating_finished_model_calls(tmp_path):
    calls, gate, state = tmp_path / 'calls', tmp_path / 'gate', tmp_path / 'state'
    env = {**os.environ, 'RESUME_CALLS': str(calls), 'RESUME_GATE': str(gate), 'PROCTOR_STATE_DIR': str(state)}
    gate.touch()  # the coding model waits while the gate exists
    proc = subprocess.Popen([sys.executable, str(TEAM), 'ship it', 'run-kill-1'], env=env, cwd=tmp_path)
    try:
        wait_for(lambda: calls.exists() and 'coding' in calls.read_text().split(), what='the coding delegation')
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = calls.read_text().split()
    assert before == ['supervisor:0', 'research', 'supervisor:1', 'coding']
    # The checkpoint is the run's recording: each response that asked for a delegation was stored
    # before the delegation started, the research delegation's answer when it finished.
    with sqlite3.connect(state / 'proctor.db') as db:
        stored = {
            s
            for (s,) in db.execute("SELECT step FROM proctor_recordings WHERE run_id = 'run-kill-1' AND kind = 'model'")
        }
    research = [s for s in stored if s.startswith('supervisor>research:')]
    assert stored - set(research) == {'supervisor#model:1', 'supervisor#model:2'} and len(research) == 1, stored
    assert research[0].endswith('#model:1')  # the coding call it was killed in is not there: it runs again

    shown = subprocess.run(
        [sys.executable, '-m', 'proctor', 'runs', 'show', 'run-kill-1', '--json'],
        env=env,
        capture_output=True,
        text=True,
    )
    rec = json.loads(shown.stdout)
    assert rec['status'] == 'running'
    assert [(d['specialist'], d['status']) for d in rec['delegations']] == [
        ('research', 'succeeded'),
        ('coding', 'running'),
    ]

    gate.unlink()
    out = subprocess.run(
        [sys.executable, '-m', 'proctor', 'resume', 'run-kill-1'], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result['status'] == 'succeeded'
    assert result['output'] == 'done: research:find the api | coding:write the code'
    # Only the interrupted coding call and the supervisor's last turn ran again.
    assert calls.read_text().split() == before + ['coding', 'supervisor:2']

    again = subprocess.run(
        [sys.executable, '-m', 'proctor', 'resume', 'run-kill-1'], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0 and json.loads(again.stdout)['status'] == 'succeeded'
    assert calls.read_text().split() == before + ['coding', 'supervisor:2']  # a finished run is not re-run


def _small_team(name: str = 'early-team', *, calls: list[str] | None = None, research=None, **kw):
    """A supervisor that delegates once to `research` and answers with its result; `calls` logs the
    model calls (`research`: another research model, which logs its own)."""
    from proctor import Specialist, Supervisor, Team
    from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_results

    calls = [] if calls is None else calls

    async def supervisor(messages):
        calls.append('supervisor')
        results = tool_results(messages)
        return text('done: ' + results[0]) if results else [delegate('research', 'find the api')]

    async def default_research(messages):
        calls.append('research')
        return text(f'research:{last_user_prompt(messages)}')

    team = Team(
        Supervisor(model=ScriptedModel(supervisor, name='sup')),
        [Specialist('research', 'Research.', model=ScriptedModel(research or default_research, name='res'))],
        name=name,
        **kw,
    )
    return team, calls


@pytest.mark.anyio
async def test_resume_of_a_run_recorded_but_never_started_starts_it(state_dir):
    """The process died between writing the run's record and starting its workflow: resume starts it."""
    team, calls = _small_team()
    team.records.create_run(
        run_id='run-early-1',
        team=team.name,
        project='p9',
        data_class='confidential',
        task='ship it',
        factory=None,
        workspace=None,
        durable=True,
    )

    result = await team.resume('run-early-1')

    assert result.status == 'succeeded' and result.output == 'done: research:find the api'
    assert calls == ['supervisor', 'research', 'supervisor']
    rec = team.get_run('run-early-1')
    assert (rec.status, rec.project, rec.data_class, rec.task) == ('succeeded', 'p9', 'confidential', 'ship it')
    assert [(d.specialist, d.status) for d in rec.delegations] == [('research', 'succeeded')]


@pytest.mark.anyio
async def test_crash_between_record_and_workflow_start_then_resume(state_dir, monkeypatch):
    team, calls = _small_team('early-team-2')

    async def die(*args, **kwargs):
        raise KeyboardInterrupt('process died')  # stands in for the process dying right here

    with monkeypatch.context() as m:
        m.setattr(team, '_run_workflow', die)  # the run's workflow is never entered
        with pytest.raises(KeyboardInterrupt):
            await team.run('ship it', project='p2', run_id='run-early-2')
    assert calls == []

    result = await team.resume('run-early-2')
    assert result.output == 'done: research:find the api' and result.status == 'succeeded'
    assert calls == ['supervisor', 'research', 'supervisor']


@pytest.mark.anyio
async def test_a_cancelled_run_stops_and_resumes_where_it_stopped(state_dir):
    """Cancelling `team.run` cancels the run itself (its delegation's model call is cancelled, not left
    running in the background), records it `cancelled`, and `resume` continues it: the supervisor's
    first response, checkpointed, is not asked for again."""
    import anyio

    from proctor.testing import text

    calls: list[str] = []
    entered, release = anyio.Event(), anyio.Event()

    async def research(messages):
        calls.append('research')
        if not release.is_set():
            entered.set()
            try:
                await anyio.sleep_forever()  # a provider that does not answer
            except anyio.get_cancelled_exc_class():
                calls.append('research cancelled')
                raise
        return text('research:found')

    team, _ = _small_team('cancel-team', calls=calls, research=research)
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            await team.run('ship it', run_id='run-cancel-1')

        tg.start_soon(run)
        await entered.wait()
        tg.cancel_scope.cancel()
    assert calls == ['supervisor', 'research', 'research cancelled']
    assert team.get_run('run-cancel-1').status == 'cancelled'

    release.set()
    result = await team.resume('run-cancel-1')
    assert (result.status, result.output) == ('succeeded', 'done: research:found')
    assert calls == ['supervisor', 'research', 'research cancelled', 'research', 'supervisor']


def test_scripted_tool_call_ids_do_not_repeat_across_processes():
    """A resumed run's new process must not hand out the tool-call ids the first process recorded."""
    import re

    from proctor.testing import delegate, tool_call

    code = 'from proctor.testing import tool_call; print(" ".join(tool_call("t").tool_call_id for _ in range(3)))'
    other = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    here = [tool_call('t').tool_call_id for _ in range(3)] + [delegate('research', 'x').tool_call_id]
    assert len(set(other + here)) == 7
    assert all(re.fullmatch(r'call_[0-9a-f]{12}', i) for i in other + here)
    assert (
        tool_call('t', call_id='mine').tool_call_id == 'mine' and delegate('r', 'x', call_id='d1').tool_call_id == 'd1'
    )
