"""Where a proctor run's CPU goes: a sampling profile of the K=1 workload of `overhead.py`, written as a
speedscope file (open it at https://www.speedscope.app, or `speedscope FILE`) and as collapsed stacks
(`flamegraph.pl FILE.collapsed > flame.svg`), with the top costs printed as one JSON line.

    python benchmarks/profile.py                          # all features on, 300 runs -> profile-all.speedscope.json
    python benchmarks/profile.py --features none --runs 500 --out /tmp/p.json
    python benchmarks/profile.py --k 20 --runs 40

The sampler is a SIGPROF timer on the process's CPU time that records the main thread's stack (the
event loop's; CPU of other threads, DBOS's pollers, is charged to whatever the loop is doing, a small
share). Standard library only (pyinstrument and py-spy are not required); it costs a little CPU
itself, so compare shares, and measure times with `table.py`.
"Top costs" are the shares of samples per owner: the innermost frame of proctor (per module), of
pydantic-ai's instrumentation or the OpenTelemetry SDK, of DBOS or of pydantic-ai on a sample's stack
(so SQLAlchemy under proctor's writer counts for the writer).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import overhead as O  # noqa: E402

_ROOTS = tuple({str(HERE.parent) + '/', str(Path(sys.modules['proctor'].__file__ or '.').parent) + '/'})


def _frame_name(code: Any) -> str:
    path = code.co_filename
    if 'site-packages/' in path:
        rel = path.rpartition('site-packages/')[2]
    elif path.startswith(_ROOTS):
        rel = 'proctor/' + path[len(next(r for r in _ROOTS if path.startswith(r))) :]
    else:
        rel = path.rpartition('/')[2] or path
    return f'{code.co_qualname} ({rel}:{code.co_firstlineno})'


class Sampler:
    """Samples the main thread's Python stack every `interval` seconds of the process's CPU time
    (`setitimer(ITIMER_PROF)`: a SIGPROF handler, which runs in the main thread between bytecodes),
    so samples are proportional to CPU spent, and an idle event loop is never sampled."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.stacks: collections.Counter[tuple[str, tuple[str, ...]]] = collections.Counter()
        self._names: dict[Any, str] = {}

    def _sample(self, signum: int, frame: Any) -> None:
        stack: list[str] = []
        f = frame
        while f is not None:
            code = f.f_code
            name = self._names.get(code)
            if name is None:
                name = self._names[code] = _frame_name(code)
            stack.append(name)
            f = f.f_back
        stack.reverse()
        self.stacks[('main', tuple(stack))] += 1

    def __enter__(self) -> Sampler:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        return self

    def __exit__(self, *exc: Any) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)

    def collapsed(self) -> str:
        return ''.join(f'{t};{";".join(s)} {n}\n' for (t, s), n in self.stacks.most_common())

    def speedscope(self, name: str) -> dict[str, Any]:
        frames: list[dict[str, str]] = []
        index: dict[str, int] = {}
        profiles = []
        by_thread: dict[str, list[tuple[tuple[str, ...], int]]] = collections.defaultdict(list)
        for (t, s), n in self.stacks.items():
            by_thread[t].append((s, n))
        for thread, items in sorted(by_thread.items(), key=lambda kv: -sum(n for _, n in kv[1])):
            samples, weights = [], []
            for s, n in items:
                ids = []
                for fr in s:
                    if fr not in index:
                        index[fr] = len(frames)
                        frames.append({'name': fr})
                    ids.append(index[fr])
                samples.append(ids)
                weights.append(n * self.interval * 1000)
            profiles.append(
                {
                    'type': 'sampled',
                    'name': thread,
                    'unit': 'milliseconds',
                    'startValue': 0,
                    'endValue': sum(weights),
                    'samples': samples,
                    'weights': weights,
                }
            )
        return {
            '$schema': 'https://www.speedscope.app/file-format-schema.json',
            'name': name,
            'exporter': 'proctor benchmarks/profile.py',
            'shared': {'frames': frames},
            'profiles': profiles,
        }

    def costs(self, n: int = 12) -> list[tuple[str, float]]:
        """Shares of all samples per owner: walking a sample's stack from its leaf, the first frame of
        proctor (by module), of tracing (pydantic-ai's instrumentation, the OpenTelemetry SDK), of DBOS
        or of pydantic-ai owns it; library frames below it (SQLAlchemy, json, pydantic-core) count for it."""
        total = sum(self.stacks.values()) or 1
        owners: collections.Counter[str] = collections.Counter()
        for (_, stack), k in self.stacks.items():
            owners[_owner(stack)] += k
        return [(o, round(100 * k / total, 1)) for o, k in owners.most_common(n)]


_INSTRUMENTATION = (
    'pydantic_ai/capabilities/instrumentation.py',
    'pydantic_ai/models/instrumented.py',
    'pydantic_ai/_instrumentation.py',
    'pydantic_ai/_otel_messages.py',
)


def _owner(stack: tuple[str, ...]) -> str:
    for fr in reversed(stack):
        rel = fr.rpartition(' (')[2]
        if rel.startswith(_INSTRUMENTATION):
            return 'pydantic-ai Instrumentation'
        if rel.startswith('opentelemetry/'):
            return 'OpenTelemetry SDK'
        if rel.startswith('proctor/') and not rel.startswith('proctor/benchmarks/'):
            return 'proctor ' + rel[len('proctor/') :].partition(':')[0]
        if rel.startswith('dbos/'):
            return 'DBOS'
        if rel.startswith(('pydantic_ai/', 'pydantic_graph/')):
            return 'pydantic-ai'
    return 'other (event loop, benchmark)'


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--features', default='all', help=f'all, none, or some of {O.FEATURES}')
    p.add_argument('--runs', type=int, default=300)
    p.add_argument('--k', type=int, default=1)
    p.add_argument('--interval', type=float, default=0.0005, help='seconds between samples')
    p.add_argument('--out', default=None, help='speedscope file (default: profile-<features>.speedscope.json)')
    p.add_argument('--top', type=int, default=12)
    a = p.parse_args()
    features = O._features(a.features)
    O.C.FakeLLM.configure(k=a.k, latency=0.0)
    team = O.build(features, name='profile')

    async def run(n: int) -> None:
        for _ in range(n):
            await team.run(O.C.USER_TASK)  # type: ignore[attr-defined]

    asyncio.run(run(10))  # warm-up (DBOS's launch, caches)

    async def timed() -> float:
        t = time.process_time()
        await run(a.runs)
        return time.process_time() - t

    with Sampler(a.interval) as sampler:
        cpu = asyncio.run(timed())
    out = Path(a.out or f'profile-{a.features.replace(",", "+")}.speedscope.json')
    out.write_text(json.dumps(sampler.speedscope(f'proctor features={a.features} k={a.k}')))
    out.with_suffix('.collapsed').write_text(sampler.collapsed())
    print(
        json.dumps(
            {
                'bench': 'proctor-profile',
                'features': a.features,
                'k': a.k,
                'runs': a.runs,
                'cpu_ms_per_run': round(cpu * 1000 / a.runs, 3),
                'samples': sum(sampler.stacks.values()),
                'speedscope': str(out),
                'collapsed': str(out.with_suffix('.collapsed')),
                'top_costs_pct': sampler.costs(a.top),
            }
        ),
        flush=True,
    )


if __name__ == '__main__':
    main()
