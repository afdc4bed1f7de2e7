"""What routing, budgets and the ledger cost per model call. Prints one JSON line.

- `route_decision_us`: `ModelRouter.route` for one agent run (registry of 12 models, a policy with
  rules, budgets with degrade-on-pressure), i.e. what a delegation pays before its first model call;
- `ledger_write_us`: one `Ledger.record` (a call and its two attempts, one SQLite transaction);
- `budget_reserve_settle_us`: `BudgetGuard` reserve before + settle after one call (two transactions);
- `observer_stack_us`: everything the router's observers add to one model call (ledger + budgets).

    python benchmarks/routing.py [--n 20000] [--writes 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

STATE = tempfile.mkdtemp(prefix='proctor-bench-routing-')
os.environ.setdefault('PROCTOR_STATE_DIR', STATE)

import anyio  # noqa: E402
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart  # noqa: E402
from pydantic_ai.usage import RequestUsage  # noqa: E402

from proctor import Budget, Ledger, ModelRouter, Specialist, Supervisor, Team  # noqa: E402
from proctor.models._plan import set_plan  # noqa: E402
from proctor.orchestrator import LedgerEntry, ModelCall, RunDeps  # noqa: E402
from proctor.state import run_scope  # noqa: E402
from proctor.testing import ScriptedModel  # noqa: E402

CLASSES = ['public', 'internal', 'confidential', 'restricted']


def build_router() -> ModelRouter:
    models = {}
    for i in range(12):
        models[f'm{i}'] = {
            'model': ScriptedModel(['ok'], name=f'm{i}'),
            'usd_per_m_input': 0.1 * (i + 1),
            'usd_per_m_output': 0.4 * (i + 1),
            'latency': ('fast', 'medium', 'slow')[i % 3],
            'capabilities': ['reasoning', 'coding'][: 1 + i % 2],
            'data_classes': CLASSES[: 1 + i % 4],
            'region': ('eu', 'us')[i % 2],
        }
    policy = {
        'degrade_at': 0.8,
        'specialists': {
            'supervisor': {'preferred': 'm3', 'fallback': ['m7', 'm11']},
            'coding': {
                'preferred': 'm9',
                'fallback': ['m5', 'm1', 'm3', 'm7', 'm11'],
                'requires': ['coding'],
                'max_latency_ms': 5000,
                'escalate': ['m11'],
            },
        },
        'rules': [
            {'data_class': ['confidential', 'restricted'], 'regions': ['eu', 'us']},
            {'project': 'acme', 'max_cost_tier': 'high'},
        ],
    }
    budgets = [
        Budget('project', '*', usd=100.0),
        Budget('team', 'bench', usd=1000.0, period='month'),
        Budget('run', usd=5.0),
    ]
    return ModelRouter(models, policy, budgets=budgets)


def stats(samples_ns: list[int]) -> dict[str, float]:
    us = sorted(s / 1000 for s in samples_ns)
    return {
        'mean': round(statistics.fmean(us), 2),
        'p50': round(us[len(us) // 2], 2),
        'p99': round(us[int(len(us) * 0.99)], 2),
    }


def bench_route(router: ModelRouter, spec: Specialist, n: int) -> dict[str, float]:
    samples = []
    for i in range(n):
        dc = CLASSES[1 + i % 3]
        t = time.perf_counter_ns()
        router.route(spec, data_class=dc, project='acme', team='bench')
        samples.append(time.perf_counter_ns() - t)
    return stats(samples)


def bench_ledger(n: int) -> dict[str, float]:
    led = Ledger(STATE)
    attempts = [
        {'seq': 0, 'model_id': 'm9', 'tier': 0, 'status': 'failed', 'error': 'ModelHTTPError: 503', 'elapsed_ms': 1.0},
        {'seq': 1, 'model_id': 'm5', 'tier': 0, 'status': 'ok', 'error': None, 'elapsed_ms': 2.0},
    ]
    samples = []
    for i in range(n):
        e = LedgerEntry(
            'run-ledger',
            'bench',
            'acme',
            'coding',
            'supervisor>coding',
            'm5',
            900,
            120,
            0.00042,
            time.time(),
            call_key=f'run-ledger#model:{i}',
            data_class='internal',
        )
        t = time.perf_counter_ns()
        led.record(e, attempts)
        samples.append(time.perf_counter_ns() - t)
    return stats(samples)


async def bench_observers(router: ModelRouter, spec: Specialist, n: int) -> tuple[dict[str, float], dict[str, float]]:
    guard, ledger = router.budget_guard, router.ledger
    assert guard is not None
    messages = [ModelRequest(parts=[UserPromptPart('Write a function that parses ISO dates and test it. ' * 20)])]
    response = ModelResponse(
        parts=[TextPart('done ' * 50)],
        usage=RequestUsage(input_tokens=900, output_tokens=120),
        metadata={'proctor': {'model_id': 'm9', 'attempts': []}},
    )
    budget_ns, stack_ns = [], []
    for i in range(n):
        run = f'obs-{i // 10}'
        set_plan(router.plan(spec, data_class='internal', project='acme', team='bench'))
        deps = RunDeps(
            run_id=run,
            team='bench',
            project='acme',
            data_class='internal',
            agent_path='supervisor>coding',
            specialist='coding',
            delegation_id=f'{run}:d',
        )
        call = ModelCall(
            deps=deps,
            key=f'{run}:d#model:{i}',
            model_id='m9',
            model_name='m9',
            system='',
            messages=messages,
            model_settings={},
        )
        t0 = time.perf_counter_ns()
        await guard.before_model_call(call)
        t1 = time.perf_counter_ns()
        await ledger.after_model_call(call, response)
        t2 = time.perf_counter_ns()
        await guard.after_model_call(call, response)
        t3 = time.perf_counter_ns()
        budget_ns.append((t1 - t0) + (t3 - t2))
        stack_ns.append(t3 - t0)
    return stats(budget_ns), stats(stack_ns)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=20000, help='routing decisions to time')
    p.add_argument('--writes', type=int, default=2000, help='ledger writes / observed calls to time')
    args = p.parse_args()
    router = build_router()
    coding = Specialist('coding', 'Code.')
    team = Team(Supervisor(), [coding], router=router, durable=False, name='bench', state_dir=STATE, trace=False)
    bench_route(router, coding, 500)  # warm up
    route = bench_route(router, coding, args.n)
    ledger = bench_ledger(args.writes)
    with run_scope(team.scope()):  # the observers run as part of the team's run, as inside team.run
        budget, stack = anyio.run(bench_observers, router, coding, args.writes)
    print(
        json.dumps(
            {
                'benchmark': 'routing',
                'route_decision_us': route,
                'ledger_write_us': ledger,
                'budget_reserve_settle_us': budget,
                'observer_stack_us': stack,
                'models': 12,
                'n_routes': args.n,
                'n_writes': args.writes,
                'database': 'sqlite (WAL)',
                'python': platform.python_version(),
                'cpus': os.cpu_count(),
            }
        )
    )


if __name__ == '__main__':
    main()
