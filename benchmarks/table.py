"""The comparison table of benchmarks/README.md: bare pydantic-ai and proctor (all features on, all
off, and each feature alone), measured one after the other in one session on this machine, so the
ratios hold even when the machine is slower or busier than usual.

    python benchmarks/table.py                  # markdown table on stdout, raw JSON lines in --json
    python benchmarks/table.py --runs 100 --variants all,none

Each variant runs in its own interpreter (`benchmarks/overhead.py --features ...` and the peers'
`pydantic_ai_bench.py`), with the same harness (../shared/benchmark/_common.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from overhead import FEATURES, SHARED  # noqa: E402

PEERS = (  # medians of 5 rounds on this machine kind, from ../shared/BENCHMARK.md
    ('LangGraph 1.2 supervisor', 7.84, 'FAILS (1 of 20 results); 0.659 patched'),
    ('LangGraph agents-as-tools', 4.38, '0.669'),
    ('OpenAI Agents 0.24', 4.00, '0.667'),
    ('CrewAI 1.15', 33.5, 'FAILS (3 of 20)'),
    ('plain asyncio (floor)', 0.03, '0.602'),
)


def _run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
        raise SystemExit(f'{" ".join(cmd[1:3])} failed (exit {proc.returncode}): {tail}')
    return json.loads(lines[-1])


def _median(results: list[dict[str, object]]) -> dict[str, object]:
    """Per key, the median of the rounds' numbers (the first round's value for anything else)."""
    out = dict(results[0])
    for key, value in results[0].items():
        nums = [r[key] for r in results if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and nums:
            out[key] = round(statistics.median(nums), 4)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--runs', type=int, default=200, help='scenario (a) runs per variant')
    p.add_argument('--variants', default='pydantic-ai,none,all,' + ','.join(FEATURES))
    p.add_argument('--skip-import', action='store_true')
    p.add_argument(
        '--rounds', type=int, default=1, help='rounds over every variant, interleaved; the table shows medians'
    )
    p.add_argument('--json', default=None, help='also write the raw JSON lines here')
    p.add_argument(
        '--baseline',
        default=None,
        help='a directory holding another `proctor` package (say `git archive main` unpacked into DIR/proctor): '
        'each proctor variant is also measured on it, in the same interleaved rounds, as "<variant> (baseline)"',
    )
    a = p.parse_args()
    common = ['--runs', str(a.runs)] + (['--skip-import'] if a.skip_import else [])
    variants = [v.strip() for v in a.variants.split(',') if v.strip()]
    if a.baseline:
        variants = [x for v in variants for x in ([v] if v == 'pydantic-ai' else [f'{v}@baseline', v])]
    raw: dict[str, list[dict[str, object]]] = {v: [] for v in variants}
    labels: dict[str, str] = {}
    for rnd in range(a.rounds):
        for v in variants:  # interleaved, so a busy spell of the machine spreads over every variant
            env = None
            name, _, where = v.partition('@')
            if where:
                env = {**os.environ, 'PYTHONPATH': os.pathsep.join([a.baseline, os.environ.get('PYTHONPATH', '')])}
            if v == 'pydantic-ai':
                cmd = [sys.executable, str(SHARED / 'pydantic_ai_bench.py'), *common]
                labels[v] = 'bare pydantic-ai (same session)'
            else:
                cmd = [sys.executable, str(HERE / 'overhead.py'), '--features', name, *common]
                labels[v] = {
                    'all': 'proctor, all features on',
                    'none': 'proctor, all features off',
                    'all+pai': "proctor, all on, pydantic-ai's Instrumentation",
                    'tracing+pai': "proctor, tracing only, pydantic-ai's Instrumentation",
                }.get(name, f'proctor, {name} only') + (' (baseline)' if where else '')
            print(f'round {rnd + 1}/{a.rounds}: {labels[v]} ...', file=sys.stderr, flush=True)
            raw[v].append(_run(cmd, env))
    if a.json:
        Path(a.json).write_text(''.join(json.dumps({**r, 'table_variant': v}) + '\n' for v in variants for r in raw[v]))
    rows = [(labels[v], _median(raw[v])) for v in variants]
    base = next((r for lb, r in rows if lb.startswith('bare')), None)
    print(
        '| variant | CPU ms/run (a) | wall ms/run (a) | × bare pydantic-ai CPU | K=20 L=0 ms (b0) '
        '| K=20 L=0.2 s wall (b) | peak RSS MB | import s |'
    )
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    for label, r in rows:
        ratio = (
            f'{float(r["a_cpu_ms_per_run"]) / float(base["a_cpu_ms_per_run"]):.2f}'
            if base and 'a_cpu_ms_per_run' in r
            else '–'
        )
        print(
            f'| {label} | {r.get("a_cpu_ms_per_run", "–")} | {r.get("a_ms_per_run_median", "–")} | {ratio} | '
            f'{r.get("b0_ms_per_run_median", "–")} | {r.get("b_wall_s_median", r.get("b_error", "–"))} | '
            f'{r.get("peak_rss_mb", "–")} | {r.get("import_s_median", "–")} |'
        )
    for name, cpu, wall in PEERS:
        print(f'| {name} (BENCHMARK.md) | {cpu} | – | – | – | {wall} | – | – |')


if __name__ == '__main__':
    main()
