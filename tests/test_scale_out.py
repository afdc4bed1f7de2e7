"""Scale-out with real servers: a PostgreSQL cluster (Debian `postgresql`, started unprivileged in a temp
dir on a free loopback port, stopped by PID) and `proctor worker` processes draining its DBOS queue.

The team (`tests/scale_out_team.py`) logs every model call and every side effect, with the pid of the
process that made it, to files the tests count.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from crash_harness import wait_for

from proctor.state._heartbeats import Heartbeats
from proctor.state._queue import close_clients, submit_run, wait_for_run
from proctor.state._records import RunRecords
from proctor.state._store import StateStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'examples' / 'scale_out'))
from local_servers import LocalPostgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]
TEAM = Path(__file__).with_name('scale_out_team.py')


@pytest.fixture(scope='module')
def postgres():
    with LocalPostgres() as pg:
        yield pg


@pytest.fixture
def cluster(postgres, tmp_path, monkeypatch):
    c = Cluster(tmp_path, postgres.create_database(f't_{uuid.uuid4().hex[:12]}'))
    for k, v in c.env.items():
        if k.startswith(('PROCTOR_', 'SCALE_')):
            monkeypatch.setenv(k, v)
    try:
        yield c
    finally:
        c.stop_all()
        close_clients()
        c.store.dispose()


class Cluster:
    """Workers (subprocesses) on one Postgres database, and the files the team logs to."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.dir = tmp
        self.url = url
        self.env = {
            **os.environ,
            'PROCTOR_DATABASE_URL': url,
            'PROCTOR_STATE_DIR': str(tmp / 'state'),
            'SCALE_CALLS': str(tmp / 'calls'),
            'SCALE_EFFECTS': str(tmp / 'effects'),
            'SCALE_GATE': str(tmp / 'gate'),
            'SCALE_LATENCY': '0.02',
            'PROCTOR_OPERATOR': 'ops',
            'PROCTOR_ROLES': 'operator',
        }
        self.store = StateStore(tmp / 'state', database_url=url)
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        alive_before = self.alive()
        with open(self.dir / f'worker{n}.log', 'wb') as log:
            p = subprocess.Popen(
                [sys.executable, '-m', 'proctor', 'worker', '--dead-after', '2', '--drain-timeout', '5', *args],
                env=self.env,
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(p)
        wait_for(
            lambda: self.alive() > alive_before or p.poll() is not None, timeout=120.0, what=f'worker {n} to start'
        )
        assert p.poll() is None, self.log(n)
        return p

    def alive(self) -> int:
        return sum(w.status == 'alive' for w in Heartbeats(self.store).list())

    def log(self, n: int) -> str:
        return (self.dir / f'worker{n}.log').read_text(errors='replace')[-3000:]

    def stop_all(self) -> None:
        for p in self.workers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.workers:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def lines(self, name: str) -> list[list[str]]:
        p = self.dir / name
        return [line.split() for line in p.read_text().splitlines()] if p.exists() else []

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, '-m', 'proctor', *args],
            env=self.env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=120,
        )


def submit(tasks: list[str]) -> list[str]:
    from scale_out_team import build_team

    team = build_team()
    return [team.submit_sync(t) for t in tasks]


@pytest.fixture(autouse=True)
def _team_module_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(TEAM.parent))


def test_two_workers_drain_fifty_queued_runs_each_exactly_once(cluster):
    a = cluster.start_worker('--concurrency', '4')
    b = cluster.start_worker('--concurrency', '4')
    tags = [f'job-{i}' for i in range(50)]
    run_ids = submit(tags)
    rows = RunRecords(cluster.store).list(limit=100)
    assert {r.status for r in rows} <= {'enqueued', 'running', 'succeeded'} and len(rows) == 50

    for tag, rid in zip(tags, run_ids):
        rec = wait_for_run(cluster.store, rid, timeout=240)
        assert (rec.status, rec.output) == ('succeeded', f'done {tag}: found {tag} | coded {tag}'), rec.error

    effects = cluster.lines('effects')
    assert Counter(tag for tag, _ in effects) == Counter(tags)  # each side effect exactly once
    calls = Counter((tag, agent) for tag, agent, _ in cluster.lines('calls'))
    per_run = {'supervisor:0': 1, 'supervisor:1': 1, 'supervisor:2': 1, 'research': 2, 'coding': 1}
    assert calls == Counter({(t, agent): n for t in tags for agent, n in per_run.items()})
    # Both workers took part, and each run ran in one process only.
    assert {int(pid) for _, pid in effects} == {a.pid, b.pid}
    by_tag: dict[str, set[str]] = {}
    for tag, _, pid in cluster.lines('calls'):
        by_tag.setdefault(tag, set()).add(pid)
    assert all(len(pids) == 1 for pids in by_tag.values())

    shown = cluster.cli('runs', 'show', run_ids[-1], '--follow', '--json')
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)['status'] == 'succeeded'
    listed = cluster.cli('workers', '--json')
    assert sorted(w['pid'] for w in json.loads(listed.stdout) if w['status'] == 'alive') == sorted([a.pid, b.pid])


def test_sigkilled_worker_runs_are_taken_over_without_repeating_finished_steps(cluster):
    from proctor.guardrails import ApprovalQueue

    (cluster.dir / 'gate').touch()  # the coding model waits while the gate exists
    a = cluster.start_worker('--concurrency', '4')
    tags = ['kill-0', 'kill-1', 'kill-2', 'gated-k']  # gated-k waits for an approval instead
    run_ids = submit(tags)
    approvals = ApprovalQueue(cluster.store)
    wait_for(
        lambda: (
            sum(agent == 'coding' for _, agent, _ in cluster.lines('calls')) == 4
            and approvals.list(run_id=run_ids[3], status='pending')
        ),
        timeout=120.0,
        what='3 runs at coding, 1 at its approval',
    )
    b = cluster.start_worker('--concurrency', '4')
    a.send_signal(signal.SIGKILL)
    a.wait()
    before = cluster.lines('calls')
    # Decided from a third process while the worker that waited for it is dead: the run that
    # another worker takes over finds the decision.
    (pending,) = approvals.list(run_id=run_ids[3], status='pending')
    decided = cluster.cli('approvals', 'approve', pending.approval_id)
    assert decided.returncode == 0, decided.stderr
    (cluster.dir / 'gate').unlink()

    expected = {t: f'done {t}: found {t} | coded {t}' for t in tags}
    expected['gated-k'] = 'done gated-k: found gated-k | coded gated-k (published gated-k)'
    for tag, rid in zip(tags, run_ids):
        rec = wait_for_run(cluster.store, rid, timeout=120)
        assert (rec.status, rec.output) == ('succeeded', expected[tag]), rec.error

    # Each side effect happened once: research's in the killed worker, the approved publish in the live one.
    assert sorted(cluster.lines('effects')) == sorted(
        [*([t, str(a.pid)] for t in tags), ['published:gated-k', str(b.pid)]]
    )
    after = cluster.lines('calls')[len(before) :]
    assert all(pid == str(b.pid) for _, _, pid in after)
    assert Counter(agent for _, agent, _ in before) == {
        'supervisor:0': 4,
        'research': 8,
        'supervisor:1': 4,
        'coding': 4,
    }
    # Only the interrupted coding turns and the supervisors' last turns ran again, in the live worker.
    assert Counter((tag, agent) for tag, agent, _ in after) == Counter(
        {(t, a_): 1 for t in tags for a_ in ('coding', 'supervisor:2')}
    )
    gone = {w.executor_id: w for w in Heartbeats(cluster.store).list(include_gone=True)}
    dead = next(w for w in gone.values() if w.pid == a.pid)
    live = next(w for w in gone.values() if w.pid == b.pid)
    # The 4 runs were handed back to the queue by the live worker (their delegations run in the runs'
    # own workflows: the coding specialist's function tools need no DBOS steps of their own).
    assert (dead.status, dead.recovered_by, dead.recovered_workflows) == ('recovered', live.executor_id, 4)


def test_approval_decided_from_a_third_process_resumes_the_run_a_worker_holds(cluster):
    from proctor.guardrails import ApprovalQueue

    w = cluster.start_worker('--concurrency', '2')
    (rid,) = submit(['gated-1'])
    queue = ApprovalQueue(cluster.store)
    pending = wait_for(lambda: queue.list(run_id=rid, status='pending'), timeout=120.0, what='the pending approval')
    assert RunRecords(cluster.store).get(rid, with_delegations=False).status == 'waiting'
    assert cluster.lines('effects') == [['gated-1', str(w.pid)]]  # research's effect; publish waits

    decided = cluster.cli('approvals', 'approve', pending[0].approval_id, '--note', 'ship it')
    assert decided.returncode == 0, decided.stderr

    rec = wait_for_run(cluster.store, rid, timeout=120)
    assert (rec.status, rec.output) == ('succeeded', 'done gated-1: found gated-1 | coded gated-1 (published gated-1)')
    assert cluster.lines('effects') == [['gated-1', str(w.pid)], ['published:gated-1', str(w.pid)]]
    assert queue.get(pending[0].approval_id).decider == 'ops'

    # A run whose team the worker cannot build fails, naming the factory (it does not wait forever).
    ghost = submit_run(
        cluster.store,
        team='ghost',
        factory=f'{cluster.dir}/missing.py:build_team',
        task='boo',
        project='p',
        data_class='internal',
        run_id='ghost-run',
    )
    rec = wait_for_run(cluster.store, ghost, timeout=60)
    assert rec.status == 'failed' and f"team factory file '{cluster.dir}/missing.py' does not exist" in rec.error


def test_exactly_one_live_worker_claims_a_dead_one(postgres, tmp_path):
    import threading

    from proctor.state._schema import workers

    store = StateStore(tmp_path / 's', database_url=postgres.create_database(f't_{uuid.uuid4().hex[:12]}'))
    beats = Heartbeats(store)
    for name in ('dead', 'fresh', 'other-queue'):
        beats.register(name, queue='q' if name != 'other-queue' else 'gpu', concurrency=1)
    with store.engine.begin() as c:  # 'dead' and 'other-queue' last beat a minute ago
        c.execute(
            workers.update().where(workers.c.executor_id != 'fresh').values(heartbeat_at=workers.c.heartbeat_at - 60)
        )
    claims: list[list[str]] = []
    start = threading.Barrier(8)

    def claim(i: int) -> None:
        start.wait()
        claims.append(beats.claim_dead(f'live-{i}', queue='q', dead_after=30))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claims) == [[]] * 7 + [['dead']]  # one claimer; the fresh worker and the other queue's are left
    assert beats.beat('dead') is False and beats.beat('fresh') is True  # a worker declared dead learns it
    # A claimer that dies before finishing loses its claim after dead_after; then another takes it.
    assert beats.claim_dead('late', queue='q', dead_after=30) == []
    with store.engine.begin() as c:
        c.execute(
            workers.update().where(workers.c.executor_id == 'dead').values(recovered_at=workers.c.recovered_at - 60)
        )
    assert beats.claim_dead('late', queue='q', dead_after=30) == ['dead']
    beats.recovered('dead', claimer='late', workflows=3)
    assert [
        (w.status, w.recovered_by, w.recovered_workflows)
        for w in beats.list(include_gone=True)
        if w.executor_id == 'dead'
    ] == [('recovered', 'late', 3)]
    store.dispose()


def test_schema_migrates_once_from_many_processes_at_once(postgres, tmp_path):
    url = postgres.create_database(f't_{uuid.uuid4().hex[:12]}')
    code = 'import sys; from proctor.state._store import StateStore; StateStore(sys.argv[1], database_url=sys.argv[2]).migrate()'
    procs = [
        subprocess.Popen([sys.executable, '-c', code, str(tmp_path / f's{i}'), url], stderr=subprocess.PIPE)
        for i in range(4)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    store = StateStore(tmp_path / 'check', database_url=url)
    from proctor.state._schema import metadata, schema_version

    with store.engine.connect() as c:
        tables = set(sa.inspect(c).get_table_names())
        assert {t.name for t in metadata.sorted_tables} <= tables
        assert c.execute(sa.select(sa.func.count()).select_from(schema_version)).scalar() == 1
    store.dispose()


def test_the_hot_paths_insert_of_new_rows_on_postgres(postgres, tmp_path):
    """`state._sql.inserted` (the ledger's write) tells the new rows on PostgreSQL as on SQLite."""
    from test_state_sql import inserted_keys_are_the_new_ones, meta

    store = StateStore(tmp_path, database_url=postgres.create_database(f't_{uuid.uuid4().hex[:12]}'))
    try:
        meta.create_all(store.engine)
        with store.engine.begin() as c:
            inserted_keys_are_the_new_ones(c)
    finally:
        store.dispose()
