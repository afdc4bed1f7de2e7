"""Scale-out on one machine, on loopback: PostgreSQL, a Chroma server, an OTLP collector and 2 workers.

What a deployment runs on several machines (see docs/deploy.md), started here as processes:

1. an unprivileged PostgreSQL cluster in a temp dir: DBOS's system tables (the queue, workflow
   steps, approval messages) and proctor's (runs, approvals, journal, ledger, audit, spans);
2. `chroma run`: the shared memory every worker reads and writes;
3. a tiny OTLP/HTTP collector (`collector.py`) that every worker exports its traces to;
4. two `proctor worker` processes draining the run queue.

Then it submits runs (`team.submit`), the way any client does: one run remembers a fact, six runs
recall it — answered by whichever worker dequeued them, from the one shared memory — and prints
the results, which worker answered, and what reached the collector. Everything is stopped by PID.

    python examples/scale_out/run.py [--workers 2] [--keep]

(needs the Debian `postgresql` package: `make system-deps`; the first memory use in each worker
loads the offline MiniLM embedding model, a few seconds of CPU.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from local_servers import LocalChroma, LocalPostgres, free_port  # noqa: E402


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f'timed out waiting for {what}')


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(('127.0.0.1', port)) == 0


def stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description='Postgres + Chroma server + OTLP collector + N workers, on loopback.')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--keep', action='store_true', help='keep the temp dir (worker logs, spans) at the end')
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix='proctor-scale-out-'))
    procs: list[subprocess.Popen] = []  # type: ignore[type-arg]
    print(f'working dir {tmp}')
    with LocalPostgres() as pg, LocalChroma(tmp / 'chroma') as chroma:
        url = pg.create_database('proctor')
        print(f'postgres   {url}  (pid {pg.proc.pid})')
        print(f'chroma     {chroma.url}  (pid {chroma.proc.pid})')
        otlp_port, spans = free_port(), tmp / 'spans.jsonl'
        procs.append(
            subprocess.Popen(
                [sys.executable, str(HERE / 'collector.py'), '--port', str(otlp_port), '--out', str(spans)]
            )
        )
        wait_for(lambda: port_open(otlp_port), 30, 'the collector')
        print(f'collector  http://127.0.0.1:{otlp_port}  (pid {procs[-1].pid})')

        # What each machine would export; a client needs the database (and memory) URL too.
        os.environ.update(
            {
                'PROCTOR_DATABASE_URL': url,
                'PROCTOR_STATE_DIR': str(tmp / 'state'),
                'PROCTOR_CHROMA_URL': chroma.url,
                'ANONYMIZED_TELEMETRY': 'False',
                'HF_HUB_OFFLINE': '1',
            }
        )
        from proctor.state._heartbeats import Heartbeats
        from proctor.state._store import StateStore

        store = StateStore()
        try:
            for i in range(args.workers):
                log = open(tmp / f'worker{i}.log', 'wb')
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            '-m',
                            'proctor',
                            'worker',
                            '--concurrency',
                            '2',
                            '--chroma-url',
                            chroma.url,
                            '--otlp-endpoint',
                            f'http://127.0.0.1:{otlp_port}',
                            '--team',
                            f'{HERE / "team.py"}:build_team',
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
                log.close()
            wait_for(
                lambda: sum(w.status == 'alive' for w in Heartbeats(store).list()) == args.workers, 120, 'the workers'
            )
            for w in Heartbeats(store).list():
                print(f'worker     {w.executor_id}  (pid {w.pid}, {w.concurrency} at once)')

            from team import build_team

            team = build_team()  # only to submit: the workers build their own from its factory
            first = team.submit_sync('remember: the deploy key rotates every Monday at 06:00 UTC')
            print(f'\nsubmitted {first}: remember a fact')
            print('  ' + _wait(team, first))
            ids = [team.submit_sync('recall: when does the deploy key rotate?') for _ in range(6)]
            print(f'submitted {len(ids)} recall runs (follow one: proctor runs show {ids[0][:12]} --follow)')
            answers = [_wait(team, rid) for rid in ids]
            for rid, answer in zip(ids, answers):
                print(f'  {rid[:12]}: {answer}')
            pids = Counter(a.rsplit('pid ', 1)[-1].rstrip(']') for a in answers)
            print(f'answered by {len(pids)} worker process(es): {dict(pids)}')

            # Each worker exports spans in batches: wait until every run's spans reached the collector.
            def traced() -> set[str]:
                if not spans.exists():
                    return set()
                lines = [json.loads(x) for x in spans.read_text().splitlines()]
                return {str(s['attributes'].get('proctor.run_id')) for s in lines if s['name'] == 'team.run'}

            try:
                wait_for(lambda: {first, *ids} <= traced(), 30, 'the traces')
            except SystemExit:
                pass
            lines = [json.loads(x) for x in spans.read_text().splitlines()] if spans.exists() else []
            print(
                f'collector received {len(lines)} spans in {len({s["trace_id"] for s in lines})} traces, '
                f'{len(traced() & {first, *ids})} of {1 + len(ids)} runs'
            )
        finally:
            for p in reversed(procs):
                stop(p)  # workers first (SIGTERM: finish held runs, leave), then the collector
            store.dispose()
            from proctor.state._queue import close_clients

            close_clients()
    if args.keep:
        print(f'kept {tmp}')
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def _wait(team, run_id: str) -> str:
    import anyio

    return str(anyio.run(lambda: team.wait(run_id, timeout=180)).output)


if __name__ == '__main__':
    main()
