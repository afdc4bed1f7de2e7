"""1,000 team runs started concurrently in one process (scripted models, 0.2 s latency per call).

Each run is the peers' K=1 workload (supervisor delegates one subtask, the worker answers, the
supervisor answers: three model calls). Prints one JSON line: runs completed, errors, wall time,
the ideal (3 x latency, every run in parallel), max model calls in flight and peak RSS.

    python benchmarks/concurrency.py                      # 1000 runs, all features on
    python benchmarks/concurrency.py --runs 200 --features none
"""

from __future__ import annotations

import argparse
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


async def _main(runs: int, latency: float, features: set[str]) -> dict[str, object]:
    O.build(features)
    C.FakeLLM.configure(k=1, latency=latency)
    results: list[str] = []
    errors: list[str] = []

    async def one() -> None:
        try:
            results.append(await O.run_team())
        except Exception as e:
            errors.append(f'{type(e).__name__}: {e}'[:200])

    await O.run_team()  # warm-up (launches the engine)
    C.FakeLLM.configure(k=1, latency=latency)
    t = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(runs):
            tg.start_soon(one)
    wall = time.perf_counter() - t
    ok = sum(1 for r in results if r == C.expected_final(1))
    return {
        'bench': 'proctor-concurrent-runs',
        'features': ','.join(sorted(features)) or 'none',
        'runs': runs,
        'completed': ok,
        'errors': len(errors),
        'first_errors': errors[:3],
        'model_calls': C.FakeLLM.calls,
        'expected_model_calls': 3 * runs,
        'latency_s': latency,
        'wall_s': round(wall, 3),
        'ideal_s': round(3 * latency, 3),
        'max_inflight_model_calls': C.FakeLLM.max_inflight,
        'peak_rss_mb': round(_peak_rss_mb(), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('--runs', type=int, default=1000)
    p.add_argument('--latency', type=float, default=0.2)
    p.add_argument('--features', default='all')
    a = p.parse_args()
    O.STATE = tempfile.mkdtemp(prefix='proctor-concurrency-')
    res = anyio.run(_main, a.runs, a.latency, O._features(a.features))
    print(json.dumps(res), flush=True)


if __name__ == '__main__':
    main()
