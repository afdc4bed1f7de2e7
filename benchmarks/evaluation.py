"""How long an evaluation takes: a 100-case suite on 3 scripted models (300 case runs), end to end.

Includes everything `proctor eval run` does: routing-policy approval per case, the budget
reservation and settlement of every call, the ledger row, the checks, the `eval.case` spans (to an
in-memory exporter), the case rows and results in SQLite. Scripted models answer at once (or after
`--latency` seconds, like a provider), so the numbers are proctor's overhead. Prints one JSON line.

    python benchmarks/evaluation.py [--cases 100] [--concurrency 8] [--repeat 1] [--latency 0] [--no-budget]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

STATE = tempfile.mkdtemp(prefix='proctor-bench-eval-')
os.environ.setdefault('PROCTOR_STATE_DIR', STATE)

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from proctor import ModelRouter  # noqa: E402
from proctor.models._budget import Budget  # noqa: E402
from proctor.models._eval import Evaluator  # noqa: E402
from proctor.models._eval_suite import parse_suite  # noqa: E402
from proctor.state import StateStore  # noqa: E402
from proctor.testing import ScriptedModel, last_user_prompt  # noqa: E402

LABELS = ('billing', 'bug', 'question')


def model(name: str, wrong_every: int, latency: float) -> ScriptedModel:
    def answer(messages):
        n = int(last_user_prompt(messages).split('#')[1])
        right = LABELS[n % 3]
        return LABELS[(n + 1) % 3] if wrong_every and n % wrong_every == 0 else right

    return ScriptedModel(answer, name=name, latency=latency)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--cases', type=int, default=100)
    ap.add_argument('--concurrency', type=int, default=8)
    ap.add_argument('--repeat', type=int, default=1)
    ap.add_argument('--latency', type=float, default=0.0, help='seconds each scripted call takes')
    ap.add_argument('--no-budget', action='store_true', help='no budget (no reservation per call)')
    args = ap.parse_args()
    suite = parse_suite(
        {
            'specialist': 'triage',
            'instructions': 'Classify the ticket: billing, bug or question.',
            'checks': [{'regex': '^(billing|bug|question)$'}],
            'cases': [
                {'name': f'c{i}', 'input': f'ticket #{i}', 'checks': [{'exact': LABELS[i % 3]}]}
                for i in range(args.cases)
            ],
        },
        name='bench',
    )
    router = ModelRouter(
        {
            'cheap': {
                'model': model('cheap', 10, args.latency),
                'usd_per_m_input': 0.1,
                'usd_per_m_output': 0.4,
                'data_classes': ['internal'],
            },
            'mid': {
                'model': model('mid', 25, args.latency),
                'usd_per_m_input': 1.0,
                'usd_per_m_output': 4.0,
                'data_classes': ['internal'],
            },
            'strong': {
                'model': model('strong', 0, args.latency),
                'usd_per_m_input': 3.0,
                'usd_per_m_output': 15.0,
                'data_classes': ['internal'],
            },
        },
        budgets=[] if args.no_budget else [Budget('project', 'eval', usd=100.0)],
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = StateStore(STATE)
    evaluator = Evaluator(router, store, tracer_provider=provider)
    t0 = time.perf_counter()
    report = evaluator.run_sync(suite, concurrency=args.concurrency, repeat=args.repeat)
    wall = time.perf_counter() - t0
    runs = len(report.cases)
    print(
        json.dumps(
            {
                'benchmark': 'evaluation',
                'cases': args.cases,
                'models': 3,
                'repeat': args.repeat,
                'concurrency': args.concurrency,
                'model_latency_s': args.latency,
                'budgeted': not args.no_budget,
                'case_runs': runs,
                'wall_s': round(wall, 3),
                'per_case_run_ms': round(wall * 1000 / runs, 3),
                'case_runs_per_s': round(runs / wall, 1),
                'spans': len(exporter.get_finished_spans()),
                'pass_rate': {r.model_id: r.pass_rate for r in report.results},
                'python': platform.python_version(),
                'cpus': os.cpu_count(),
            }
        )
    )


if __name__ == '__main__':
    main()
