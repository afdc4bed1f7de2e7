"""Scale-out throughput: runs/s drained by 1, 2 and 4 `proctor worker` processes on one Postgres.

Each run is the K=1 workload of `overhead.py`: the supervisor delegates one subtask, the worker agent
answers, the supervisor answers from the result: 3 scripted model calls of `--latency` s (0.2 s), so
one run takes at least 0.6 s and `--concurrency` runs per worker bound the ideal at
workers x concurrency / 0.6 runs/s. Postgres is a throwaway unprivileged cluster on loopback
(`examples/scale_out/local_servers.py`); each worker count gets a fresh database and fresh workers
(teams built up front with `--team`), all runs are submitted at once from 8 threads, and the clock
runs from the first submit to the last run recorded as succeeded. Prints one JSON line.

    python benchmarks/scale_out.py                      # 1, 2 and 4 workers, 48 runs each
    python benchmarks/scale_out.py --workers 1,2 --runs 24 --concurrency 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve()
FACTORY = f'{HERE}:build_team'


def build_team():
    from proctor import Specialist, Supervisor, Team
    from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_results

    latency = float(os.environ.get('SCALE_BENCH_LATENCY', '0.2'))

    def supervisor(messages):
        results = tool_results(messages)
        if not results:
            return [delegate('research', 'subtask-0 of ' + last_user_prompt(messages))]
        return text('FINAL[' + '|'.join(sorted(results)) + ']')

    def research(messages):
        return text('research:done:' + last_user_prompt(messages).split()[0])

    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='fake-supervisor', latency=latency)),
        [Specialist('research', 'Research.', model=ScriptedModel(research, name='fake-research', latency=latency))],
        name='scale-bench',
        factory=FACTORY,
    )


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _measure(pg, n_workers: int, runs: int, concurrency: int, latency: float, tmp: Path) -> dict[str, float]:
    import sqlalchemy as sa

    from proctor.state._heartbeats import Heartbeats
    from proctor.state._queue import close_clients, submit_run
    from proctor.state._schema import runs as runs_table
    from proctor.state._store import StateStore

    url = pg.create_database(f'bench_{n_workers}_{uuid.uuid4().hex[:6]}')
    state = tmp / f'state{n_workers}'
    env = {
        **os.environ,
        'PROCTOR_DATABASE_URL': url,
        'PROCTOR_STATE_DIR': str(state),
        'SCALE_BENCH_LATENCY': str(latency),
    }
    store = StateStore(state, database_url=url)
    store.migrate()
    procs = []
    try:
        for i in range(n_workers):
            log = open(tmp / f'worker{n_workers}-{i}.log', 'wb')
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        '-m',
                        'proctor',
                        'worker',
                        '--concurrency',
                        str(concurrency),
                        '--team',
                        FACTORY,
                        '--poll-interval',
                        '0.1',
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        deadline = time.monotonic() + 180
        while sum(w.status == 'alive' for w in Heartbeats(store).list()) < n_workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f'workers did not start; see {tmp}')
            time.sleep(0.1)
        time.sleep(1.0)  # let every worker finish launching DBOS and start polling
        cpu0 = sum(_cpu_s(p.pid) for p in procs)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            # What team.submit does, without building the team in this process (the workers do).
            list(
                pool.map(
                    lambda i: submit_run(
                        store,
                        team='scale-bench',
                        factory=FACTORY,
                        task=f'task-{i}',
                        project='bench',
                        data_class='internal',
                        run_id=uuid.uuid4().hex,
                    ),
                    range(runs),
                )
            )
        submitted_s = time.perf_counter() - t0
        done_q = (
            sa.select(sa.func.count()).select_from(runs_table).where(runs_table.c.status.in_(('succeeded', 'failed')))
        )
        while True:
            with store.engine.connect() as c:
                if c.execute(done_q).scalar() >= runs:
                    break
            if time.perf_counter() - t0 > 600:
                raise SystemExit(f'runs did not finish in 600 s; worker logs in {tmp}')
            time.sleep(0.05)
        with store.engine.connect() as c:
            rows = c.execute(sa.select(runs_table.c.task, runs_table.c.status, runs_table.c.output)).all()
        elapsed = time.perf_counter() - t0
        cpu = sum(_cpu_s(p.pid) for p in procs) - cpu0
        bad = [r for r in rows if r.status != 'succeeded' or json.loads(r.output) != 'FINAL[research:done:subtask-0]']
        if bad:
            raise SystemExit(f'{len(bad)} runs failed or answered wrong, e.g. {bad[0]}')
        return {
            'runs_per_s': runs / elapsed,
            'elapsed_s': elapsed,
            'submit_s': submitted_s,
            'worker_cpu_ms_per_run': 1000 * cpu / runs,
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        close_clients()
        store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--workers', default='1,2,4', help='worker counts to measure (comma-separated)')
    ap.add_argument('--runs', type=int, default=48)
    ap.add_argument('--concurrency', type=int, default=8, help='runs per worker at once')
    ap.add_argument('--latency', type=float, default=0.2, help='seconds per scripted model call')
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(',') if x.strip()]

    sys.path.insert(0, str(HERE.parent.parent / 'examples' / 'scale_out'))
    from local_servers import LocalPostgres

    os.environ.setdefault('ANONYMIZED_TELEMETRY', 'False')
    results: dict[str, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix='proctor-bench-scale-'))
    with LocalPostgres() as pg:
        for n in counts:
            results[str(n)] = _measure(pg, n, args.runs, args.concurrency, args.latency, tmp)
    shutil.rmtree(tmp)  # kept (with the workers' logs) when a measurement fails
    print(
        json.dumps(
            {
                'benchmark': 'scale_out',
                'runs': args.runs,
                'concurrency_per_worker': args.concurrency,
                'latency_s': args.latency,
                'model_calls_per_run': 3,
                'cpu_cores': os.cpu_count(),
                'runs_per_s': {n: round(r['runs_per_s'], 2) for n, r in results.items()},
                'ideal_runs_per_s': {n: round(int(n) * args.concurrency / (3 * args.latency), 2) for n in results},
                'elapsed_s': {n: round(r['elapsed_s'], 2) for n, r in results.items()},
                'submit_s': {n: round(r['submit_s'], 2) for n, r in results.items()},
                'worker_cpu_ms_per_run': {n: round(r['worker_cpu_ms_per_run'], 1) for n, r in results.items()},
                'load_avg_1m_at_end': round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == '__main__':
    main()
