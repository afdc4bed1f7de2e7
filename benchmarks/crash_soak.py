"""Crash soak: kill -9 durable runs at random points, resume them, and check exactly-once side effects
and that no finished model call is asked again.

Each trial starts a fresh run of `tests/crash_team.py` (two side effects, `safe` then `risky`; `risky`
needs an operator's approval) in a subprocess and SIGKILLs it at a random point: at start-up (after
the imports, after the team is built, after the run is recorded, after DBOS launched, after the
workflow started), at a random time, or just after a random event (a model turn, an effect entered
or done, an approval opened), so kills land in imports, model steps, effects and approval waits.
Half of the trials kill the resumed process again (double kills), a fifth of them twice more (three
kills in one run). The run is then resumed with `proctor resume` until it finishes (a run killed
before it was recorded is started again with the same command and run id).

An operator thread decides approvals from this process the whole time, after a random delay (so
decisions land before, during and after the outages): tool approvals are approved; an in-doubt
approval (an effect cut off mid-way) is decided the way a human would, by checking the effect's
real state (the counter file): skip it if it happened, re-run it if it did not.

Every model call of the team is traced (`model:<agent path>:<turn>`); after each kill the soak notes
which calls' responses the run's recording holds, and a call the next process makes again whose
response was already recorded is a **repeated model call** (must be 0).

Prints one JSON line: trials, kills, runs completed, duplicated side effects (must be 0), repeated
model calls (must be 0), lost approvals (must be 0: an approval given but not honoured, left
pending, or opened twice for one call), missing side effects, in-doubt approvals, and where the
kills landed.

    python benchmarks/crash_soak.py --trials 50
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEAM = HERE.parent / 'tests' / 'crash_team.py'
sys.path.insert(0, str(TEAM.parent))
from crash_team import model_calls, recorded_calls  # noqa: E402

START_POINTS = ('imported', 'built', 'recorded', 'launched', 'started')
EVENTS = (
    'coding-model:0',
    'coding-model:1',
    'coding-model:2',
    'effect:safe:enter',
    'effect:safe:acted',
    'effect:risky:enter',
    'effect:risky:acted',
    'approval-pending',
)


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


class Operator(threading.Thread):
    """Decides every pending approval of the state store, after a random delay."""

    def __init__(self, state: Path, crash_dir: Path, rng: random.Random) -> None:
        super().__init__(daemon=True)
        from proctor.guardrails import ApprovalQueue
        from proctor.state._store import StateStore

        self.queue = ApprovalQueue(StateStore(state), audit=True)
        self.crash_dir = crash_dir
        self.rng = rng
        self.stop = threading.Event()
        self.seen: dict[str, float] = {}
        self.in_doubt = 0

    def run(self) -> None:
        from proctor.exceptions import ApprovalDecisionError

        while not self.stop.wait(0.05):
            try:
                pending = self.queue.list(status='pending')
            except Exception:
                continue
            for a in pending:
                due = self.seen.setdefault(a.approval_id, time.monotonic() + self.rng.uniform(0, 1.5))
                if time.monotonic() < due:
                    continue
                try:
                    if a.kind == 'in_doubt':
                        self.in_doubt += 1
                        happened = a.args.get('name') in _lines(self.crash_dir / 'counter')
                        if happened:
                            self.queue.reject(a.approval_id, decider='soak', roles=['operator'], reason='it happened')
                        else:
                            self.queue.approve(
                                a.approval_id, decider='soak', roles=['operator'], reason='it did not happen'
                            )
                    else:
                        self.queue.approve(a.approval_id, decider='soak', roles=['operator'], reason='ok')
                except ApprovalDecisionError:
                    pass


def _kill_point(rng: random.Random, *, first: bool) -> tuple[str, float]:
    if first and rng.random() < 0.3:
        return 'start-' + rng.choice(START_POINTS), 0.0
    if rng.random() < 0.3:
        return 'time', rng.uniform(0.5, 8.0)
    return rng.choice(EVENTS), rng.uniform(0.0, 0.3)


def _wait_and_kill(
    proc: subprocess.Popen[bytes], crash_dir: Path, queue: object, point: str, delay: float, seen_before: int
) -> bool:
    """Kill `proc` at `point` (+ `delay`); False if it finished first."""
    deadline = time.monotonic() + 120
    if point == 'time':
        end = time.monotonic() + delay
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(0.01)
    elif point.startswith('start-'):  # the process waits at its start-up pause point (`crash_team.py`)
        mark = f'paused:pause-{point}'
        while (
            proc.poll() is None
            and time.monotonic() < deadline
            and mark not in _lines(crash_dir / 'trace')[seen_before:]
        ):
            time.sleep(0.01)
    else:
        while proc.poll() is None and time.monotonic() < deadline:
            if point == 'approval-pending':
                hit = bool(queue.list(status='pending'))  # type: ignore[attr-defined]
            else:
                hit = _lines(crash_dir / 'trace')[seen_before:].count(point) > 0
            if hit:
                break
            time.sleep(0.01)
        end = time.monotonic() + delay
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(0.005)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def trial(i: int, root: Path, rng: random.Random, env_base: dict[str, str]) -> dict[str, object]:
    crash_dir = root / f'trial-{i:03d}'
    crash_dir.mkdir()
    state = crash_dir / 'state'
    env = {**env_base, 'CRASH_DIR': str(crash_dir), 'PROCTOR_STATE_DIR': str(state), 'CRASH_EFFECT_S': '0.15'}
    run_id = f'soak-{i:03d}'
    op = Operator(state, crash_dir, rng)
    op.start()
    kills: list[str] = []
    from proctor.exceptions import UnknownRunError
    from proctor.state._records import RunRecords

    records = RunRecords(op.queue.store)

    def launch(resume: bool) -> subprocess.Popen[bytes]:
        argv = ['-m', 'proctor', 'resume', run_id] if resume else [str(TEAM), run_id]
        return subprocess.Popen(
            [sys.executable, *argv], env=env, cwd=crash_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def recorded() -> bool:
        try:
            records.get(run_id, with_delegations=False)
            return True
        except UnknownRunError:
            return False

    r = rng.random()
    rounds = 1 if r < 0.5 else 2 if r < 0.8 else 3
    segments: list[tuple[set[str], int]] = []  # after each kill: the recorded calls, the trace length
    first_point, delay = _kill_point(rng, first=True)
    gate = crash_dir / f'pause-{first_point}'
    if first_point.startswith('start-'):
        gate.touch()
    proc = launch(resume=False)
    for i in range(rounds):
        point, delay = (first_point, delay) if i == 0 else _kill_point(rng, first=False)
        seen = len(_lines(crash_dir / 'trace'))
        killed = _wait_and_kill(proc, crash_dir, op.queue, point, delay, seen if i else 0)
        gate.unlink(missing_ok=True)
        if not killed:
            break  # it finished before the kill point
        kills.append(point)
        proc.communicate()
        segments.append((recorded_calls(state), len(_lines(crash_dir / 'trace'))))
        time.sleep(rng.uniform(0, 1.0))  # the operator may decide while the run is down
        # Recorded: `proctor resume`; killed before the run was recorded: the same command again.
        proc = launch(resume=recorded())
    out, err = proc.communicate(timeout=300)
    op.stop.set()
    op.join()
    trace = _lines(crash_dir / 'trace')
    repeated: list[str] = []
    for n, (done, start) in enumerate(segments):
        end = segments[n + 1][1] if n + 1 < len(segments) else len(trace)
        repeated += [c for c in model_calls(trace[start:end]) if c in done]
    status = 'missing'
    try:
        status = records.get(run_id, with_delegations=False).status
    except UnknownRunError:
        pass
    counter = Counter(_lines(crash_dir / 'counter'))
    approvals = op.queue.list(run_id=run_id)
    tool_approvals = [a for a in approvals if a.kind == 'tool']
    lost = sum(1 for a in approvals if a.pending)  # left waiting
    lost += max(0, len(tool_approvals) - 1)  # a recovered run opened a second approval for the same call
    if status == 'succeeded' and any(a.status == 'approved' for a in tool_approvals) and counter['risky'] == 0:
        lost += 1  # approved, yet the run finished without the effect
    return {
        'run_id': run_id,
        'status': status,
        'kills': kills,
        'counter': dict(counter),
        'lost': lost,
        'in_doubt': sum(1 for a in approvals if a.kind == 'in_doubt'),
        'repeated_calls': repeated,
        'model_calls': len(model_calls(trace)),
        'error': None if status == 'succeeded' else (err or b'').decode(errors='replace')[-500:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--trials', type=int, default=50)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--keep', action='store_true', help='keep the trial folders (printed on stderr)')
    args = ap.parse_args()
    import logging

    import structlog

    # A script entry point: library logs (decisions, in-doubt warnings) go to stderr, the JSON line to stdout.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    rng = random.Random(args.seed)
    env = {**os.environ, 'PROCTOR_OPERATOR': 'soak', 'PYTHONUNBUFFERED': '1'}
    env.pop('PROCTOR_DATABASE_URL', None)
    started = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix='proctor-soak-')
    root = Path(tmp.name)
    results = [trial(i, root, rng, env) for i in range(args.trials)]
    dup = sum(max(0, n - 1) for r in results for n in r['counter'].values())  # type: ignore[union-attr]
    missing = sum(
        1 for r in results if r['status'] == 'succeeded' for e in ('safe', 'risky') if not r['counter'].get(e)
    )  # type: ignore[union-attr]
    kill_points = Counter(k for r in results for k in r['kills'])  # type: ignore[union-attr]
    failed = [r for r in results if r['status'] != 'succeeded']
    summary = {
        'benchmark': 'crash_soak',
        'trials': args.trials,
        'kills': sum(kill_points.values()),
        'runs_completed': sum(1 for r in results if r['status'] == 'succeeded'),
        'duplicated_side_effects': dup,
        'lost_approvals': sum(int(r['lost']) for r in results),  # type: ignore[call-overload]
        'repeated_model_calls': sum(len(r['repeated_calls']) for r in results),  # type: ignore[arg-type]
        'model_calls': sum(int(r['model_calls']) for r in results),  # type: ignore[call-overload]
        'trials_by_kills': dict(sorted(Counter(len(r['kills']) for r in results).items())),  # type: ignore[arg-type]
        'missing_side_effects': missing,
        'in_doubt_approvals': sum(int(r['in_doubt']) for r in results),  # type: ignore[call-overload]
        'kill_points': dict(sorted(kill_points.items())),
        'failed_runs': [{'run_id': r['run_id'], 'status': r['status'], 'error': r['error']} for r in failed][:5],
        'repeated': [
            {'run_id': r['run_id'], 'kills': r['kills'], 'calls': r['repeated_calls']}
            for r in results
            if r['repeated_calls']
        ][:5],
        'seconds': round(time.perf_counter() - started, 1),
        'seed': args.seed,
    }
    if args.keep:
        print(f'trial folders kept in {root}', file=sys.stderr)
        tmp._finalizer.detach()  # type: ignore[attr-defined]
    else:
        tmp.cleanup()
    print(json.dumps(summary))


if __name__ == '__main__':
    main()
