"""Worker heartbeats (the `proctor_workers` table): who is alive, who died, who took over from whom.

Every worker beats every few seconds with the *database's* clock, so machines need not agree on
the time. A worker whose last beat is older than `dead_after` seconds (or that stopped) is dead; a
live worker of the same queue *claims* it with one conditional UPDATE, so exactly one worker
recovers a dead one. A claim whose claimer dies too expires after `dead_after`, and is claimed again.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ._schema import workers
from ._store import StateStore

__all__ = ('Heartbeats', 'WorkerRecord', 'db_now', 'DEAD_AFTER')

#: Seconds without a beat after which a worker counts as dead (the `proctor worker` default).
DEAD_AFTER = 15.0


def db_now(conn: sa.Connection) -> float:
    """The database server's clock, in UTC epoch seconds."""
    if conn.dialect.name == 'postgresql':
        return float(conn.execute(sa.text('SELECT EXTRACT(EPOCH FROM clock_timestamp())')).scalar_one())
    return float(conn.execute(sa.text("SELECT (julianday('now') - 2440587.5) * 86400.0")).scalar_one())


@dataclass
class WorkerRecord:
    executor_id: str
    host: str
    pid: int
    queue: str
    concurrency: int
    status: str
    started_at: float
    heartbeat_at: float
    recovered_by: str | None
    recovered_at: float | None
    recovered_workflows: int | None
    age_s: float  # seconds since the last beat, by the database's clock

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Heartbeats:
    """The workers table of one state store (sync; workers call it from their own thread)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def register(self, executor_id: str, *, queue: str, concurrency: int) -> None:
        with self.store.engine.begin() as c:
            now = db_now(c)
            c.execute(
                workers.insert().values(
                    executor_id=executor_id,
                    host=socket.gethostname()[:200],
                    pid=os.getpid(),
                    queue=queue,
                    concurrency=concurrency,
                    status='alive',
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def beat(self, executor_id: str) -> bool:
        """Record that `executor_id` is alive; False if it was declared dead (its runs were taken over)."""
        with self.store.engine.begin() as c:
            now = db_now(c)
            w = workers.c
            res = c.execute(
                workers.update().where(w.executor_id == executor_id, w.status == 'alive').values(heartbeat_at=now)
            )
            return res.rowcount == 1

    def stopped(self, executor_id: str) -> None:
        """A clean exit: whatever it still held is recovered at once, without waiting for `dead_after`."""
        with self.store.engine.begin() as c:
            now = db_now(c)
            w = workers.c
            c.execute(
                workers.update()
                .where(w.executor_id == executor_id, w.status == 'alive')
                .values(status='stopped', heartbeat_at=now)
            )

    def _dead(self, cutoff: float) -> Any:
        w = workers.c
        return sa.or_(
            sa.and_(w.status == 'alive', w.heartbeat_at < cutoff),
            w.status == 'stopped',
            sa.and_(w.status == 'recovering', w.recovered_at < cutoff),  # its recoverer died mid-way
        )

    def claim_dead(self, claimer: str, *, queue: str, dead_after: float) -> list[str]:
        """Claim the dead workers of `queue` for `claimer`: each is returned to exactly one claimer."""
        w = workers.c
        claimed: list[str] = []
        with self.store.engine.begin() as c:
            now = db_now(c)
            dead = self._dead(now - dead_after)
            candidates = (
                c.execute(sa.select(w.executor_id).where(w.queue == queue, w.executor_id != claimer, dead))
                .scalars()
                .all()
            )
        for executor_id in candidates:
            with self.store.engine.begin() as c:
                now = db_now(c)
                # Re-checked in the UPDATE itself: of several claimers, the first to commit wins.
                res = c.execute(
                    workers.update()
                    .where(w.executor_id == executor_id, self._dead(now - dead_after))
                    .values(status='recovering', recovered_by=claimer, recovered_at=now)
                )
                if res.rowcount == 1:
                    claimed.append(executor_id)
        return claimed

    def recovered(self, executor_id: str, *, claimer: str, workflows: int) -> None:
        with self.store.engine.begin() as c:
            w = workers.c
            c.execute(
                workers.update()
                .where(w.executor_id == executor_id, w.recovered_by == claimer, w.status == 'recovering')
                .values(status='recovered', recovered_workflows=workflows)
            )

    def executor_alive(
        self, executor_id: str, *, dead_after: float = DEAD_AFTER, same_machine: bool = False
    ) -> tuple[bool | None, str]:
        """Whether the process running DBOS as `executor_id` is alive (None: cannot tell), and what
        it is ('worker W (pid P on H)' or 'process P on H').

        A worker is alive while it beats; any process on this host while its pid exists. Plain
        processes (`proctor-HOST-PID-RANDOM`) do not beat: on another host they cannot be checked.
        `same_machine` (a SQLite store) takes an id without a host for one of this host.
        """
        w = workers.c
        with self.store.engine.connect() as c:
            now = db_now(c)
            row = c.execute(sa.select(workers).where(w.executor_id == executor_id)).mappings().first()
        here = socket.gethostname()[:200]
        if row is not None:
            what = f'worker {executor_id} (pid {row["pid"]} on {row["host"]})'
            if row['status'] != 'alive' or now - row['heartbeat_at'] > dead_after:
                return False, what
            return (_pid_alive(row['pid']) if row['host'] == here else True), what
        host, pid = _host_pid(executor_id)
        if pid is None:
            return None, f'executor {executor_id}'
        if host is None and same_machine:
            host = here
        what = f'process {pid} on {host or "an unknown host"} (executor {executor_id})'
        return (_pid_alive(pid) if host == here else None), what

    def list(self, *, include_gone: bool = False) -> list[WorkerRecord]:
        """Workers, newest first (by default only those alive, stopped or being recovered)."""
        w = workers.c
        q = sa.select(workers).order_by(w.started_at.desc())
        if not include_gone:
            q = q.where(w.status != 'recovered')
        with self.store.engine.connect() as c:
            now = db_now(c)
            return [WorkerRecord(**dict(r), age_s=now - r['heartbeat_at']) for r in c.execute(q).mappings()]


def _host_pid(executor_id: str) -> tuple[str | None, int | None]:
    """Host and pid of a plain process's executor id: `proctor-HOST-PID-RANDOM` (or the older `proctor-PID-RANDOM`)."""
    prefix, _, rest = executor_id.partition('-')
    parts = rest.rsplit('-', 2)
    if prefix != 'proctor' or len(parts) < 2 or not parts[-2].isdigit():
        return None, None
    return (parts[0] if len(parts) == 3 else None), int(parts[-2])


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    return True
