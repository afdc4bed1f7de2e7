"""Real servers on loopback for the scale-out example, its tests and its benchmark: an unprivileged
PostgreSQL cluster in a temp dir and a Chroma server, each started, waited for, and stopped by PID.

```python
with LocalPostgres() as pg, LocalChroma() as chroma:
    url = pg.create_database('proctor')        # postgresql://proctor@127.0.0.1:PORT/proctor
    ...                                        # PROCTOR_DATABASE_URL=url PROCTOR_CHROMA_URL=chroma.url
```

PostgreSQL comes from the Debian package `postgresql` (binaries under `/usr/lib/postgresql/*/bin/`,
or `initdb` on PATH). It refuses to run as root, so as root the cluster is created and run as the
unprivileged `postgres` user that the package creates (or `$PROCTOR_PG_USER`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from proctor.memory._server import ChromaServer, free_port, stop_by_pid

__all__ = ('LocalPostgres', 'LocalChroma', 'free_port', 'postgres_bin_dir')


def postgres_bin_dir() -> Path:
    """Where `initdb` and `postgres` live; a RuntimeError with the install hint when nowhere."""
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which('initdb')
    if on_path:
        return Path(on_path).parent
    raise RuntimeError('PostgreSQL is not installed: apt-get install -y postgresql (or `make system-deps`)')


class LocalPostgres:
    """A throwaway PostgreSQL cluster: `initdb` in a temp dir, `postgres` on 127.0.0.1:`port`.

    `durable=False` (the default) turns fsync off: fine for tests and demos, never for real data.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        user: str | None = None,
        durable: bool = False,
        max_connections: int = 400,
        ready_timeout: float = 60.0,
    ) -> None:
        self.bin = postgres_bin_dir()
        self.port = port or free_port()
        self.role = 'proctor'  # the cluster's superuser (trust auth on loopback only)
        self.durable = durable
        self.max_connections = max_connections
        self.ready_timeout = ready_timeout
        self.os_user = user or (os.environ.get('PROCTOR_PG_USER', 'postgres') if os.geteuid() == 0 else None)
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ processes as the unprivileged user

    def _as_user(self) -> dict[str, Any]:
        if self.os_user is None:
            return {}
        pw = pwd.getpwnam(self.os_user)
        env = {**os.environ, 'HOME': pw.pw_dir, 'USER': self.os_user, 'LOGNAME': self.os_user}
        return {'user': pw.pw_uid, 'group': pw.pw_gid, 'extra_groups': [], 'env': env}

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None
        return self.dir / 'data'

    @property
    def log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / 'postgres.log'

    def url(self, database: str = 'postgres') -> str:
        return f'postgresql://{self.role}@127.0.0.1:{self.port}/{database}'

    def start(self) -> LocalPostgres:
        # /tmp is world-traversable; pytest's tmp dirs (mode 0700, root's) are not.
        self.dir = Path(tempfile.mkdtemp(prefix='proctor-pg-'))
        if self.os_user is not None:
            pw = pwd.getpwnam(self.os_user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        kw = self._as_user()
        out = subprocess.run(
            [
                str(self.bin / 'initdb'),
                '-D',
                str(self.data_dir),
                '-U',
                self.role,
                '-A',
                'trust',
                '-E',
                'UTF8',
                '--no-sync',
                '--no-instructions',
            ],
            cwd=self.dir,
            capture_output=True,
            text=True,
            **kw,
        )
        if out.returncode != 0:
            self._cleanup()
            raise RuntimeError(f'initdb failed ({out.returncode}): {out.stderr.strip()[-2000:]}')
        settings = {
            'listen_addresses': '127.0.0.1',
            'port': str(self.port),
            'unix_socket_directories': str(self.dir),
            'max_connections': str(self.max_connections),
            'shared_buffers': '64MB',
        }
        if not self.durable:
            settings.update(fsync='off', synchronous_commit='off', full_page_writes='off')
        args = [str(self.bin / 'postgres'), '-D', str(self.data_dir)]
        for k, v in settings.items():
            args += ['-c', f'{k}={v}']
        log = open(self.log_path, 'ab')
        try:
            self.proc = subprocess.Popen(
                args,
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **kw,
            )
        finally:
            log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin / 'pg_isready'), '-q', '-h', '127.0.0.1', '-p', str(self.port), '-U', self.role],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            try:  # returns at once if the server died
                self.proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            log = self.log_path.read_text(errors='replace')[-2000:]
            self._cleanup()
            raise RuntimeError(f'postgres exited with {self.proc.returncode}: {log}')
        log = self.log_path.read_text(errors='replace')[-2000:]
        self.stop()
        raise RuntimeError(f'postgres on port {self.port} not ready after {self.ready_timeout}s: {log}')

    def create_database(self, name: str) -> str:
        """Create database `name` (a plain identifier); returns its URL."""
        import psycopg

        if not name.replace('_', '').isalnum():
            raise ValueError(f'database name {name!r} must be letters, digits and _')
        with psycopg.connect(self.url('postgres'), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster's PID), then remove the cluster's directory."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_by_pid(proc, signal.SIGINT, timeout=15.0)
        self._cleanup()

    def _cleanup(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalChroma(ChromaServer):
    """`chroma run` on 127.0.0.1:`port` with its data in `path` (a temp dir by default, removed on stop)."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, port: int | None = None, ready_timeout: float = 60.0
    ) -> None:
        self._own_dir = path is None
        self.dir = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix='proctor-chroma-'))
        super().__init__(
            self.dir / 'data',
            log_path=self.dir / 'chroma.log',
            port=port,
            ready_timeout=ready_timeout,
            stop_timeout=15.0,
        )

    def stop(self) -> None:
        super().stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalChroma:
        self.start()
        return self
