"""What each feature costs per run, measured steadily on a noisy machine: every variant in ONE process.

`overhead.py` measures one variant per interpreter; on a shared machine whose speed drifts by tens of
percent within minutes, two such runs differ by more than a feature costs. Here the K=1 team of
`overhead.py` is built once per variant (each under its own team name), and the variants take turns:
batch after batch, each variant runs `--batch` runs, and the CPU time of each batch is kept. The
medians over `--batches` turns are compared with the all-off team of the same process, so drift hits
every variant alike.

    python benchmarks/feature_costs.py                  # one JSON line
    python benchmarks/feature_costs.py --batches 20 --variants none,tracing,recording

Durable variants share one DBOS instance (launched by the first durable run, after every team is built);
its background threads (~2% of a core) then count in every variant's CPU time, all-off's included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead as O
from _turns import take_turns

DEFAULT_VARIANTS = ('none', *O.FEATURES, 'all')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batches', type=int, default=12, help='turns over every variant')
    p.add_argument('--batch', type=int, default=20, help='runs per variant per turn')
    p.add_argument(
        '--variants',
        default=','.join(DEFAULT_VARIANTS),
        help=f"comma-separated: none, all, features {O.FEATURES} (`+pai`: pydantic-ai's Instrumentation), "
        'pydantic-ai (the bare pydantic-ai team of the peers)',
    )
    p.add_argument('--k', type=int, default=1, help='delegations per run (20: the fan-out shape of scenario b0)')
    p.add_argument(
        '--worker-tool',
        action='store_true',
        help='give each worker a tool it never calls, as most real specialists have',
    )
    a = p.parse_args()
    names = [v.strip() for v in a.variants.split(',') if v.strip()]
    if 'none' not in names:
        names.insert(0, 'none')
    O.C.FakeLLM.configure(k=a.k, latency=0.0)
    teams: dict[str, object] = {}
    for v in names:
        if v == 'pydantic-ai':  # the peers' bare pydantic-ai team, in this process too
            import pydantic_ai_bench as P

            P.build()
            teams[v] = P.TEAM['supervisor']
        else:
            teams[v] = O.build(O._features(v), name=f'bench-{v}', worker_tool=a.worker_tool)
    cpu: dict[str, list[float]] = {}

    async def run() -> None:
        for team in teams.values():  # warm-up (and DBOS's launch, for durable variants)
            for _ in range(5):
                await team.run(O.C.USER_TASK)  # type: ignore[attr-defined]
        cpu.update(
            await take_turns(
                lambda v: teams[v].run(O.C.USER_TASK),  # type: ignore[attr-defined]
                list(teams),
                batches=a.batches,
                batch=a.batch,
            )
        )

    asyncio.run(run())
    median = {v: statistics.median(samples) for v, samples in cpu.items()}
    base = median['none']
    out: dict[str, object] = {
        'bench': 'proctor-feature-costs',
        'k': a.k,
        'worker_tool': a.worker_tool,
        'batches': a.batches,
        'batch': a.batch,
    }
    bare = median.get('pydantic-ai')
    for v, m in median.items():
        out[f'{v}_cpu_ms_per_run'] = round(m, 2)
        if bare:
            out[f'{v}_x_pydantic_ai'] = round(m / bare, 2)
        if v not in ('none', 'pydantic-ai'):
            out[f'{v}_extra_cpu_ms'] = round(m - base, 2)
            out[f'{v}_x_none'] = round(m / base, 2)
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
