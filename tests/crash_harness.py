"""What the crash tests share: a team process driven from the test (`spawn`, `kill`, `finish`), the
trace and counter files it writes into its directory, and an operator deciding from another process
(`cli`, the approval queue). `tests/test_crash.py` and `tests/test_nested_crash.py` subclass `Harness`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from proctor.guardrails import ApprovalQueue
from proctor.state._store import StateStore

T = TypeVar('T')


def wait_for(predicate: Callable[[], T], timeout: float = 90.0, what: str = 'condition') -> T:
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
        self.store = StateStore(tmp / 'state')
        self.queue = ApprovalQueue(self.store)
        self.proc: subprocess.Popen[str] | None = None

    def lines(self, name: str) -> list[str]:
        p = self.dir / name
        return p.read_text().split() if p.exists() else []

    def spawn(self, *args: str) -> None:
        """Start `python ARGS` in the harness's directory and environment."""
        self.proc = subprocess.Popen(
            [sys.executable, *args],
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

    def finish(self) -> dict[str, Any]:
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        result.pop('run_id', None)
        return result

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

    def stop(self) -> None:
        """End the team process if the test left it running (the fixture's teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def harness_fixture(cls: type[Harness], tmp: Path) -> Iterator[Harness]:
    harness = cls(tmp)
    yield harness
    harness.stop()
