"""A real Chroma server on loopback for tests, benchmarks and the scale-out example: `chroma run` on a
free 127.0.0.1 port with telemetry off, ready when its heartbeat answers, stopped by PID.

```python
with ChromaServer(tmp_path / 'chroma') as server:
    memory = ChromaMemory(url=server.url)
```
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ('ChromaServer', 'free_port', 'stop_by_pid')


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now (nothing holds it for the caller)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def stop_by_pid(proc: subprocess.Popen[Any], first: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Send `first` to the process; SIGKILL it if it has not exited `timeout` seconds later."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, first)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def _chroma_executable() -> Path:
    # The `chroma` script installed beside this interpreter, so a venv's server matches its client.
    beside = Path(sys.executable).parent / 'chroma'
    return beside if beside.exists() else Path(shutil.which('chroma') or 'chroma')


class ChromaServer:
    """`with ChromaServer(path) as server: server.url` — started, healthy, then stopped by PID.

    The data lives in `path`; the server's output goes to `log_path` (default: `path` + `.log`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        log_path: str | os.PathLike[str] | None = None,
        port: int | None = None,
        ready_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.log_path = Path(log_path) if log_path is not None else self.path.with_name(self.path.name + '.log')
        self.port = port or free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ChromaServer:
        self.path.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, 'ANONYMIZED_TELEMETRY': 'False', 'NO_COLOR': '1'}
        args = [
            str(_chroma_executable()),
            'run',
            '--path',
            str(self.path),
            '--host',
            '127.0.0.1',
            '--port',
            str(self.port),
        ]
        with open(self.log_path, 'wb') as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        self._wait_ready()
        return self

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors='replace')[-2000:]

    def _wait_ready(self) -> None:
        import httpx

        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        with httpx.Client(timeout=1.0) as http:
            while time.monotonic() < deadline:
                try:
                    if http.get(f'{self.url}/api/v2/heartbeat').status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                try:  # wait on the process itself: returns at once if the server died
                    self.proc.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
                raise RuntimeError(f'chroma server exited with {self.proc.returncode}: {self._log_tail()}')
        log = self._log_tail()  # before stop(): a subclass may remove the log with its directory
        self.stop()
        raise RuntimeError(f'chroma server at {self.url} not ready after {self.ready_timeout}s: {log}')

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_by_pid(proc, signal.SIGTERM, self.stop_timeout)

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
