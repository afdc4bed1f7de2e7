"""What tracing costs: per-run time with tracing off vs on, and the trace store's write cost per span.

A team of a supervisor and three specialists on scripted models (no latency, so proctor's own cost
is all there is to see): the supervisor delegates to all three in one turn, each specialist calls
one tool, then everyone answers (9 model calls, 6 tool calls, 22 spans per run). Four teams take
turns after a warm-up: `off` (`trace=False`), `noop` (pydantic-ai's instrumentation on a no-op
tracer provider: the cost of its hooks alone), `on` (tracing as a user gets it: GenAI spans with
prompts and outputs into the local trace store) and `on_no_content` (`PROCTOR_TRACE_CONTENT=0`); medians of wall time and of process CPU time per run, with scripted models
answering at once (the worst case: proctor's own cost is all there is) and after a set latency. Recording and the audit log are on in
both (they are not tracing). The store's write cost is measured apart: synthetic spans through a
`StoreSpanProcessor`, then one flush.

    .venv/bin/python benchmarks/tracing.py                 # 45 runs per mode, latency 0 and 50 ms
    .venv/bin/python benchmarks/tracing.py --runs 30 --durable --latency 0

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import anyio

from proctor import Specialist, Supervisor, Team
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_call, tool_results

WORKERS = ('research', 'coding', 'review')


def lookup(topic: str) -> str:
    """Look a topic up."""
    return f'notes on {topic}'


def build(
    name: str, state_dir: str, *, trace: bool, durable: bool, latency: float = 0.0, tracer_provider: object = None
) -> Team:
    def supervisor(messages):
        results = tool_results(messages)
        if not results:
            return [delegate(w, f'part of the task for {w}') for w in WORKERS]
        return text('final: ' + ' | '.join(sorted(results)))

    def worker(w: str) -> ScriptedModel:
        def answer(messages):
            done = tool_results(messages, 'lookup')
            if not done:
                return [tool_call('lookup', {'topic': last_user_prompt(messages)})]
            return text(f'{w}: {done[0]}')

        return ScriptedModel(answer, name=f'fake-{w}', latency=latency)

    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='fake-supervisor', latency=latency)),
        [Specialist(w, f'You are the {w} worker.', model=worker(w), tools=[lookup]) for w in WORKERS],
        name=name,
        state_dir=state_dir,
        durable=durable,
        trace=trace,
        tracer_provider=tracer_provider,
    )


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


async def _per_run(runs: int, durable: bool, latency: float) -> dict[str, object]:
    from opentelemetry.trace import NoOpTracerProvider

    state = tempfile.mkdtemp(prefix='proctor-bench-tracing-')
    tag = f'{int(latency * 1000)}ms'
    teams = {
        'off': build(f'bench-off-{tag}', state, trace=False, durable=durable, latency=latency),
        # pydantic-ai's instrumentation with spans that record nothing: what the instrumentation hooks cost
        'noop': build(
            f'bench-noop-{tag}',
            state,
            trace=True,
            durable=durable,
            latency=latency,
            tracer_provider=NoOpTracerProvider(),
        ),
        'on': build(f'bench-on-{tag}', state, trace=True, durable=durable, latency=latency),
    }
    os.environ['PROCTOR_TRACE_CONTENT'] = '0'  # read when a team builds its agents
    teams['on_no_content'] = build(f'bench-nc-{tag}', state, trace=True, durable=durable, latency=latency)
    del os.environ['PROCTOR_TRACE_CONTENT']
    wall: dict[str, list[float]] = {m: [] for m in teams}
    cpu: dict[str, list[float]] = {m: [] for m in teams}
    for _ in range(5):  # warm-up: imports, engine launch, first-call caches
        for t in teams.values():
            await t.run('warm up')
    order = list(teams)
    for i in range(runs):
        for mode in order[i % len(order) :] + order[: i % len(order)]:  # rotate, so drift hits every mode alike
            t0, c0 = time.perf_counter(), time.process_time()
            await teams[mode].run('build the feature')
            wall[mode].append(time.perf_counter() - t0)
            cpu[mode].append(time.process_time() - c0)
    from proctor.tracing import TraceStore

    spans = TraceStore(teams['on'].store).list_traces(limit=1)[0]['spans']
    w = {m: statistics.median(v) for m, v in wall.items()}
    c = {m: statistics.median(v) for m, v in cpu.items()}
    return {
        'model_latency_ms': latency * 1000,
        'spans_per_run': spans,
        'wall_ms': {m: _median_ms(v) for m, v in wall.items()},
        'cpu_ms': {m: _median_ms(v) for m, v in cpu.items()},  # process CPU per run, all threads
        'overhead_pct_wall': round((w['on'] / w['off'] - 1) * 100, 2),
        'overhead_pct_cpu': round((c['on'] / c['off'] - 1) * 100, 2),
        'instrumentation_hooks_only_pct_cpu': round((c['noop'] / c['off'] - 1) * 100, 2),
        'overhead_pct_cpu_without_content': round((c['on_no_content'] / c['off'] - 1) * 100, 2),
    }


def _store_write_cost(n: int) -> dict[str, object]:
    from opentelemetry.sdk.trace import TracerProvider

    from proctor.state._store import StateStore
    from proctor.tracing._store import StoreSpanProcessor

    store = StateStore(tempfile.mkdtemp(prefix='proctor-bench-spans-'))
    proc = StoreSpanProcessor(store, owned=True)
    provider = TracerProvider()
    provider.add_span_processor(proc)
    tracer = provider.get_tracer('bench')
    attrs = {
        'gen_ai.operation.name': 'chat',
        'gen_ai.request.model': 'fake',
        'gen_ai.usage.input_tokens': 120,
        'gen_ai.usage.output_tokens': 40,
        'gen_ai.output.messages': json.dumps(
            [{'role': 'assistant', 'parts': [{'type': 'text', 'content': 'x' * 400}]}]
        ),
    }
    proc.force_flush()  # schema check and engine first
    t0 = time.perf_counter()
    for _ in range(n):
        with tracer.start_as_current_span('chat fake', attributes=attrs):
            pass
    t1 = time.perf_counter()
    proc.force_flush()
    t2 = time.perf_counter()
    provider.shutdown()
    return {
        'store_spans_written': n,
        'store_on_end_us_per_span': round((t1 - t0) / n * 1e6, 2),  # span start+end incl. the processor's append
        'store_write_us_per_span': round((t2 - t1) / n * 1e6, 2),  # the flush: JSON + one upsert transaction
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--runs', type=int, default=45, help='runs per mode')
    p.add_argument('--durable', action='store_true', help='durable runs (DBOS on SQLite)')
    p.add_argument('--latency', default='0,0.05', help='model latencies to measure, seconds, comma-separated')
    p.add_argument('--spans', type=int, default=2000, help='synthetic spans for the store write cost')
    args = p.parse_args()
    out: dict[str, object] = {
        'benchmark': 'tracing',
        'runs_per_mode': args.runs,
        'durable': args.durable,
        'target_overhead_pct': 10.0,
    }
    out['per_run'] = [
        anyio.run(_per_run, args.runs, args.durable, float(x)) for x in args.latency.split(',') if x.strip()
    ]
    out.update(_store_write_cost(args.spans))
    if args.durable:
        from proctor.state import _dbos as _engine

        _engine.shutdown()
    print(json.dumps(out))


if __name__ == '__main__':
    main()
