"""`Worker`: one process draining a DBOS queue of team runs, beside others on the same database.

Scale-out is DBOS's: each worker launches DBOS under its own executor id and dequeues submitted
runs (`proctor.queued_run`) from its queue, at most `concurrency` at a time. What DBOS leaves to a
deployment is noticing that an executor died; proctor does it with heartbeats (`_heartbeats`): a
live worker claims a dead worker of its queue and hands that worker's pending workflows back to
DBOS (`reenqueue_for_recovery`, the call DBOS's own recovery makes), roots to the run queue and
delegations to the queue's recovery queue. Whichever worker dequeues them replays their recorded
steps from the database, so finished model calls and side effects are not repeated.

A worker builds, before it dequeues anything and then every heartbeat, the teams of all active runs
(from the factories recorded with them), so it can execute any recovered delegation of any run.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from .._log import get_logger
from ..exceptions import UserError
from ..state import _dbos as _engine
from ..state._heartbeats import Heartbeats
from ..state._queue import RUN_QUEUE, check_queue_name, recovery_queue
from ..state._schema import runs
from ..state._store import StateStore
from ._live import load_factory, teams
from ._workflow import launch

__all__ = ('Worker', 'ACTIVE_STATUSES')

log = get_logger('proctor.worker')

#: Run statuses whose team a worker keeps built.
ACTIVE_STATUSES = ('enqueued', 'running', 'waiting')


class Worker:
    """Drains `queue` of submitted runs in this process until `stop()`.

    `concurrency` bounds the runs this worker executes at once (recovered delegations of dead
    workers' runs come on top). A worker that has not beaten for `dead_after` seconds is taken over
    by a live one. `teams` are factories to build up front (others are built from the runs).
    """

    def __init__(
        self,
        store: StateStore | None = None,
        *,
        queue: str = RUN_QUEUE,
        concurrency: int = 4,
        dead_after: float = 15.0,
        poll_interval: float = 0.25,
        executor_id: str | None = None,
        teams: Sequence[str] = (),
    ) -> None:
        if concurrency < 1:
            raise UserError(f'worker concurrency must be at least 1, not {concurrency}')
        if dead_after < 1:
            raise UserError(f'--dead-after must be at least 1 second, not {dead_after:g}')
        if poll_interval <= 0:
            raise UserError(f'poll interval must be positive, not {poll_interval:g}')
        self.store = store or StateStore()
        self.queue = check_queue_name(queue)
        self.concurrency = concurrency
        self.dead_after = dead_after
        self.poll_interval = poll_interval
        self.heartbeat_every = max(0.1, min(2.0, dead_after / 5))
        self.executor_id = executor_id or f'worker-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}'
        self.teams = tuple(teams)
        self.heartbeats = Heartbeats(self.store)
        #: Set when the worker should stop (a signal, `stop()`, or other workers declared it dead).
        self.stop_requested = threading.Event()
        self.lost = False
        self._built: set[tuple[str, str]] = set()
        self._queues: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._tender_stop = threading.Event()
        self._abort_drain = threading.Event()
        self._started = self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Worker:
        """Build teams, register, launch DBOS and start dequeuing; returns at once."""
        if _engine.launched_url() is not None:
            # DBOS runs once per process, under one executor id: the one peers recover by.
            raise UserError('a worker needs a process of its own: DBOS is already running in this one')
        self.store.migrate()
        for spec in self.teams:
            load_factory(spec)
        self.build_active_teams()
        self.heartbeats.register(self.executor_id, queue=self.queue, concurrency=self.concurrency)
        # Beating starts before DBOS launches (which can take seconds), so peers never see a
        # starting worker as dead; housekeeping has its own thread so a slow team build never
        # delays a beat.
        self._start_thread(self._beat, 'proctor-worker-heartbeat')
        try:
            self._declare_queues()
            launch(self.store, executor_id=self.executor_id)
        except BaseException:
            self._tender_stop.set()
            self.heartbeats.stopped(self.executor_id)
            raise
        self._started = True
        self._start_thread(self._tend, 'proctor-worker-recovery')
        log.info(
            'worker started',
            executor_id=self.executor_id,
            queue=self.queue,
            concurrency=self.concurrency,
            database='postgres' if not self.store.is_sqlite else 'sqlite',
        )
        return self

    def _declare_queues(self) -> None:
        # In-process queues, as DBOS's Kafka consumers use: worker_concurrency stays this worker's
        # own setting, and processes that are not workers never dequeue runs.
        self._queues = [
            _engine.register_queue(name, worker_concurrency=limit, polling_interval_sec=self.poll_interval)
            for name, limit in ((self.queue, self.concurrency), (recovery_queue(self.queue), None))
        ]

    def running(self) -> int:
        """Workflows (runs and delegations) this worker holds that are not finished."""
        from dbos import DBOS

        return len(
            DBOS.list_workflows(executor_id=self.executor_id, status='PENDING', load_input=False, load_output=False)
        )

    def stop(self, *, drain_timeout: float = 30.0) -> None:
        """Take no new runs, wait up to `drain_timeout` s for the held ones, then leave; anything
        still held is recovered by another worker at once."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        self.stop_requested.set()
        for q in self._queues:
            _engine.pause_queue(q)  # dequeue nothing more
        deadline = time.monotonic() + drain_timeout
        while not self.lost and not self._abort_drain.is_set() and time.monotonic() < deadline:
            try:
                if self.running() == 0:
                    break
            except Exception:
                break
            time.sleep(0.2)
        self._tender_stop.set()
        for t in self._threads:
            t.join(timeout=10)
        _engine.shutdown()
        for q in self._queues:
            _engine.drop_queue(q.name)
        if not self.lost:
            self.heartbeats.stopped(self.executor_id)
        log.info('worker stopped', executor_id=self.executor_id)

    def abort_drain(self) -> None:
        """Stop waiting for held runs (a second Ctrl-C): leave now, another worker takes them over."""
        self._abort_drain.set()

    def run(self, *, drain_timeout: float = 30.0) -> None:
        """`start()`, wait for `stop_requested`, `stop()` (blocking; for the CLI)."""
        self.start()
        try:
            while not self.stop_requested.wait(0.5):
                pass
        finally:
            self.stop(drain_timeout=0 if self.lost else drain_timeout)

    # ------------------------------------------------------------------ housekeeping

    def _start_thread(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _beat(self) -> None:
        while not self._tender_stop.wait(self.heartbeat_every):
            try:
                alive = self.heartbeats.beat(self.executor_id)
            except Exception as e:
                log.warning('worker heartbeat failed', executor_id=self.executor_id, error=f'{type(e).__name__}: {e}')
                continue
            if not alive:
                # Peers took our runs over (we were silent too long): executing them too would be
                # wasted work, and DBOS refuses the results of an execution that lost its workflow.
                log.error('worker was declared dead by its peers; stopping', executor_id=self.executor_id)
                self.lost = True
                self.stop_requested.set()
                return

    def _tend(self) -> None:
        while not self._tender_stop.wait(self.heartbeat_every):
            try:
                self.build_active_teams()
                self.recover_dead()
            except Exception as e:
                log.warning(
                    'worker recovery pass failed', executor_id=self.executor_id, error=f'{type(e).__name__}: {e}'
                )

    def build_active_teams(self) -> None:
        """Build the team of every active run (from its recorded factory) not built yet."""
        q = sa.select(runs.c.team, runs.c.factory).where(
            runs.c.status.in_(ACTIVE_STATUSES), runs.c.factory.is_not(None)
        )
        with self.store.engine.connect() as c:
            pairs = c.execute(q.distinct()).all()
        for team, factory in pairs:
            if (team, factory) in self._built:
                continue
            self._built.add((team, factory))
            try:
                teams.get(self.store.url, team, factory=factory)
            except Exception as e:
                log.warning('cannot build team', team=team, factory=factory, error=f'{type(e).__name__}: {e}')

    def recover_dead(self) -> int:
        """Take over the pending workflows of dead workers of this queue; returns how many."""
        total = 0
        for dead in self.heartbeats.claim_dead(self.executor_id, queue=self.queue, dead_after=self.dead_after):
            n = self._reenqueue(dead)
            self.heartbeats.recovered(dead, claimer=self.executor_id, workflows=n)
            total += n
            log.info('recovered a dead worker', dead=dead, workflows=n, by=self.executor_id)
        return total

    def _reenqueue(self, dead: str) -> int:
        # What DBOS's `_recover_pending_workflows` does, except that delegations (no queue of their
        # own) go to this queue's recovery queue, which only workers that can build teams listen to.
        return sum(
            _engine.reenqueue(wf.workflow_id, [dead], recovery_queue(self.queue))
            for wf in _engine.pending_workflows(dead)
        )
