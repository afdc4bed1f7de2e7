"""A real Chroma server for tests and benchmarks: `chroma run` on a free loopback port, ready when its
heartbeat answers, stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ('ChromaServer', 'free_port')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class ChromaServer:
    """`with ChromaServer(path) as server: server.url` — started, healthy, then stopped by PID."""

    def __init__(self, path: str | os.PathLike[str], *, port: int | None = None, ready_timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.port = port or free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.path.with_name(self.path.name + '.log')

    def start(self) -> ChromaServer:
        chroma = Path(sys.executable).parent / 'chroma'
        self.path.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, 'ANONYMIZED_TELEMETRY': 'False', 'NO_COLOR': '1'}
        with open(self.log_path, 'wb') as log:
            self.proc = subprocess.Popen(
                [str(chroma), 'run', '--path', str(self.path), '--host', '127.0.0.1', '--port', str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            )  # fmt: skip
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
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
                raise RuntimeError(f'chroma server exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}')
        self.stop()
        raise RuntimeError(f'chroma server at {self.url} not ready after {self.ready_timeout}s: {self.log_path.read_text()[-2000:]}')

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
