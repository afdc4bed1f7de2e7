"""1,000 team runs started concurrently in one process (scripted models, 0.2 s latency per call).

Each run is the peers' K=1 workload (supervisor delegates one subtask, the worker answers, the
supervisor answers: three model calls). Prints one JSON line: runs completed, errors, wall time,
the process's CPU time and the collector's share of it (seconds per generation), the ideal (3 x
latency, every run in parallel), max model calls in flight and peak RSS.

    python benchmarks/concurrency.py                      # 1000 runs, all features on
    python benchmarks/concurrency.py --runs 200 --features none
    python benchmarks/concurrency.py --gc-freeze         # gc.freeze() after the warm-up, as a server may
    python benchmarks/concurrency.py --features pydantic-ai   # the peers' bare pydantic-ai team, same harness
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead as O

C = O.C


def _peak_rss_mb() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


async def _main(runs: int, latency: float, features: set[str] | None, freeze: bool) -> dict[str, object]:
    """`features=None`: the peers' bare pydantic-ai team (`pydantic_ai_bench.py`) instead of proctor."""
    if features is None:
        import pydantic_ai_bench as bare

        bare.build()
        run_team = bare.run_team
    else:
        O.build(features)
        run_team = O.run_team
    C.FakeLLM.configure(k=1, latency=latency)
    results: list[str] = []
    errors: list[str] = []

    async def one() -> None:
        try:
            results.append(await run_team())
        except Exception as e:
            errors.append(f'{type(e).__name__}: {e}'[:200])

    await run_team()  # warm-up (launches the engine)
    C.FakeLLM.configure(k=1, latency=latency)
    if freeze:  # what a server process may choose: the collector leaves what the imports built alone
        gc.collect()
        gc.freeze()
    pauses = [0.0, 0.0, 0.0]  # seconds in the collector, per generation
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == 'start':
            started[0] = time.perf_counter()
        else:
            pauses[info['generation']] += time.perf_counter() - started[0]

    gc.callbacks.append(on_gc)
    t, cpu = time.perf_counter(), time.process_time()
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(runs):
                tg.start_soon(one)
    finally:
        gc.callbacks.remove(on_gc)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    ok = sum(1 for r in results if r == C.expected_final(1))
    return {
        'bench': 'proctor-concurrent-runs',
        'features': 'pydantic-ai (bare)' if features is None else ','.join(sorted(features)) or 'none',
        'gc_freeze': freeze,
        'runs': runs,
        'completed': ok,
        'errors': len(errors),
        'first_errors': errors[:3],
        'model_calls': C.FakeLLM.calls,
        'expected_model_calls': 3 * runs,
        'latency_s': latency,
        'wall_s': round(wall, 3),
        'cpu_s': round(cpu, 3),
        'gc_s_by_generation': [round(x, 3) for x in pauses],
        'ideal_s': round(3 * latency, 3),
        'max_inflight_model_calls': C.FakeLLM.max_inflight,
        'peak_rss_mb': round(_peak_rss_mb(), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('--runs', type=int, default=1000)
    p.add_argument('--latency', type=float, default=0.2)
    p.add_argument('--features', default='all', help=f'all, none, some of {O.FEATURES}, or pydantic-ai (bare)')
    p.add_argument('--gc-freeze', action='store_true', help='gc.freeze() once the team is built and warmed up')
    a = p.parse_args()
    O.STATE = tempfile.mkdtemp(prefix='proctor-concurrency-')
    features = None if a.features == 'pydantic-ai' else O._features(a.features)
    res = anyio.run(_main, a.runs, a.latency, features, a.gc_freeze)
    print(json.dumps(res), flush=True)


if __name__ == '__main__':
    main()
