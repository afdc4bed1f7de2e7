"""SIGKILL a durable run at the worst moments and bring it back in a new process.

The team (`tests/crash_team.py`) does two side effects, `safe` then `risky` (which needs approval),
each appending its name to a counter file. Whatever the kill point, after restart and the operator's
decisions the run completes and each effect is in the counter exactly once; an effect cut off
mid-way becomes an in-doubt approval instead of being repeated.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proctor.guardrails import ApprovalQueue
from proctor.state._records import RunRecords
from proctor.state._store import StateStore

pytestmark = pytest.mark.slow
TEAM = Path(__file__).with_name('crash_team.py')


def wait_for(predicate, timeout: float = 90.0, what: str = 'condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f'timed out waiting for {what}')


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.env = {
            **os.environ,
            'CRASH_DIR': str(tmp),
            'PROCTOR_STATE_DIR': str(tmp / 'state'),
            'PROCTOR_OPERATOR': 'ops',
            'PROCTOR_ROLES': 'operator',
        }
        self.queue = ApprovalQueue(StateStore(tmp / 'state'))
        self.proc: subprocess.Popen[str] | None = None

    def lines(self, name: str) -> list[str]:
        p = self.dir / name
        return p.read_text().split() if p.exists() else []

    def pause(self, name: str) -> None:
        (self.dir / name).touch()

    def release(self, name: str) -> None:
        (self.dir / name).unlink()

    def start(self, run_id: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(TEAM), run_id],
            env=self.env,
            cwd=self.dir,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def resume(self, run_id: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'proctor', 'resume', run_id],
            env=self.env,
            cwd=self.dir,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, 'the run ended before the kill'
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.communicate()

    def finish(self) -> dict:
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        result.pop('run_id', None)
        return result

    def paused_at(self, name: str) -> None:
        wait_for(lambda: f'paused:{name}' in self.lines('trace'), what=f'the run to pause at {name}')

    def pending(self, kind: str) -> object:
        return wait_for(
            lambda: next((a for a in self.queue.list(status='pending') if a.kind == kind), None),
            what=f'a pending {kind} approval',
        )

    def decide(self, a: object, how: str, reason: str = 'ok') -> None:
        """Decide as an operator from this (another) process."""
        getattr(self.queue, how)(a.approval_id, decider='ops', roles=['operator'], reason=reason)  # type: ignore[attr-defined]

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, '-m', 'proctor', *args],
            env=self.env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    if harness.proc is not None and harness.proc.poll() is None:
        harness.proc.kill()
        harness.proc.communicate()


DONE = {'status': 'succeeded', 'output': 'done: coding: bumped safe | bumped risky | research: ok'}


def test_kill_while_waiting_for_approval_then_approve_from_another_process_and_resume(h):
    h.start('crash-wait')
    a = h.pending('tool')
    assert (a.tool, a.args, a.agent_path) == ('bump', {'name': 'risky'}, 'supervisor>coding')
    assert RunRecords(h.queue.store).get('crash-wait').status == 'waiting'
    h.kill()
    assert h.lines('counter') == ['safe']
    h.cli('approvals', 'approve', a.approval_id, '--note', 'approved while the run was down')  # decided while dead
    h.resume('crash-wait')
    assert h.finish() == DONE
    assert h.lines('counter') == ['safe', 'risky']  # each effect exactly once
    assert [x.approval_id for x in h.queue.list(run_id='crash-wait')] == [a.approval_id]  # the same approval, honoured


def test_kill_mid_effect_before_it_acted_becomes_in_doubt_and_an_approved_rerun_acts_once(h):
    h.pause('pause-effect-safe-before')
    h.start('crash-mid-1')
    h.paused_at('pause-effect-safe-before')
    h.kill()
    h.release('pause-effect-safe-before')
    assert h.lines('counter') == []
    h.resume('crash-mid-1')
    doubt = h.pending('in_doubt')  # never blindly repeated: an operator decides
    assert (doubt.tool, doubt.args) == ('bump', {'name': 'safe'}) and h.lines('counter') == []
    h.decide(doubt, 'approve', 'the counter shows it did not happen')
    h.decide(h.pending('tool'), 'approve')
    assert h.finish() == DONE
    assert h.lines('counter') == ['safe', 'risky']


def test_kill_mid_effect_after_it_acted_is_skipped_on_rejection_and_the_agent_is_told(h):
    h.pause('pause-effect-safe-after')
    h.start('crash-mid-2')
    h.paused_at('pause-effect-safe-after')
    h.kill()
    h.release('pause-effect-safe-after')
    assert h.lines('counter') == ['safe']
    h.resume('crash-mid-2')
    doubt = h.pending('in_doubt')
    h.decide(doubt, 'reject', 'it already happened')
    h.decide(h.pending('tool'), 'approve')
    result = h.finish()
    assert result['status'] == 'succeeded'
    assert 'The bump call was skipped' in result['output'] and 'it already happened' in result['output']
    assert h.lines('counter') == ['safe', 'risky']


def test_kill_between_steps_resumes_without_repeating_the_finished_effect(h):
    h.pause('pause-model-1')  # the coding model's second turn, after `safe` ran and was journaled
    h.start('crash-between')
    h.paused_at('pause-model-1')
    h.kill()
    h.release('pause-model-1')
    assert h.lines('counter') == ['safe']
    h.resume('crash-between')
    a = h.pending('tool')
    assert not [
        x for x in h.queue.list(run_id='crash-between') if x.kind == 'in_doubt'
    ]  # a finished effect is not in doubt
    h.decide(a, 'approve')
    assert h.finish() == DONE
    assert h.lines('counter') == ['safe', 'risky']
