"""Kill a durable run mid-flight (SIGKILL, after its first delegation) and resume it in a new process:
the finished model calls are not made again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
TEAM = Path(__file__).with_name('resume_team.py')


def wait_for(predicate, timeout: float = 60.0, what: str = 'condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f'timed out waiting for {what}')


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

    shown = subprocess.run(
        [sys.executable, '-m', 'proctor', 'runs', 'show', 'run-kill-1', '--json'], env=env, capture_output=True, text=True
    )
    rec = json.loads(shown.stdout)
    assert rec['status'] == 'running'
    assert [(d['specialist'], d['status']) for d in rec['delegations']] == [('research', 'succeeded'), ('coding', 'running')]

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

    again = subprocess.run([sys.executable, '-m', 'proctor', 'resume', 'run-kill-1'], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and json.loads(again.stdout)['status'] == 'succeeded'
    assert calls.read_text().split() == before + ['coding', 'supervisor:2']  # a finished run is not re-run
