"""The floor under an all-on proctor run: what the libraries it builds on cost for the same K=1 run,
measured in one process against bare pydantic-ai and against proctor itself (K=1, or `--k`).

Every feature on means, per run: a DBOS workflow (durability), OpenTelemetry spans (tracing), and
rows in the state store (recording, audit log, ledger, the trace store). Each variant below adds
to the bare pydantic-ai run only the library work one of those needs, with the data of a real
proctor run: no proctor code runs in them.

- `pydantic-ai`: the peers' bare pydantic-ai team (`pydantic_ai_bench.py`);
- `+dbos`: each bare run is one DBOS workflow with its id set (`SetWorkflowID`), on DBOS as proctor
  launches it (its SQLite system database, bookkeeping inline: `proctor.state._dbos`);
- `+spans`: the bare run, then the spans one all-on proctor run emits (same names, kinds, parents and
  attributes, copied from one) started and ended through the OpenTelemetry SDK;
- `+rows`: the bare run, then the rows one all-on proctor run stores (copied from one, fresh ids),
  inserted on plain `sqlite3` into proctor's schema in the run's three transactions (the run row;
  the delegating response with the delegation's start; the rest), and the run's messages serialised
  once (what recording needs of pydantic-ai);
- `floor`: all three;
- `proctor`: `overhead.py`'s team, every feature on.

The variants take turns in one process, batch after batch (`feature_costs.py`; in a new order each
turn, so no variant always follows the same one), so the machine's drift hits them alike; the
extras are paired by turn (a variant's batch minus bare pydantic-ai's of the same turn). `proctor_over_floor_ms` is what proctor's own code costs on top of its libraries.

    python benchmarks/floor.py                 # one JSON line
    python benchmarks/floor.py --batches 20 --batch 50
    python benchmarks/floor.py --k 20 --batch 5          # the fan-out: 20 delegations a run
    python benchmarks/floor.py --rss                     # peak RSS of bare, floor and proctor, each alone

`--rss` runs `pydantic-ai`, `floor` and `proctor` each in a fresh interpreter (300 runs) and reports
their peak RSS: the floor's interpreter loads the libraries (DBOS launched on SQLite, SQLAlchemy,
the OpenTelemetry SDK) and none of proctor's modules; its spans and rows come from a template file
an all-on proctor run wrote in an interpreter of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from _turns import paired_median, take_turns
from pydantic_ai.messages import ModelMessagesTypeAdapter

# DBOS and the OpenTelemetry SDK are imported where used: `--rss` measures bare pydantic-ai in an
# interpreter that loads neither.

VARIANTS = ('pydantic-ai', '+dbos', '+spans', '+rows', 'floor', 'proctor')


_LAST: dict[str, Any] = {}


def _register_workflow() -> None:
    """The bare run as a DBOS workflow (registered before DBOS launches)."""
    from dbos import DBOS

    @DBOS.workflow(name='proctor-floor.run')
    async def bare_workflow(task: str) -> str:
        result = await _LAST['agent'].run(task)
        _LAST['messages'] = result.all_messages()  # for the floor's serialisation (a workflow returns JSON)
        return str(result.output)

    _LAST['workflow'] = bare_workflow


async def _durable_bare(workflow_id: str, task: str) -> Any:
    from dbos import SetWorkflowID

    with SetWorkflowID(workflow_id):
        return await _LAST['workflow'](task)


class Template:
    """What one all-on proctor run emitted and stored: its rows (by table), its spans (name, kind,
    parent's index, attributes; parents first) and the schema of the tables they are in."""

    def __init__(self, run_id: str, rows: dict[str, list[dict[str, Any]]], schema: list[str]) -> None:
        self.run_id, self.rows, self.schema = run_id, rows, schema
        spans = sorted(rows['proctor_spans'], key=lambda r: r['start_ns'])
        index = {s['span_id']: i for i, s in enumerate(spans)}
        self.spans = [
            (s['name'], s['kind'], index.get(s['parent_id']), json.loads(s['attributes'] or '{}')) for s in spans
        ]
        self.first = {'proctor_audit', 'proctor_ledger', 'proctor_recordings'}  # their first row: the checkpoint

    @classmethod
    def of_run(cls, team: Any, run_id: str) -> Template:
        """Read back from the team's state store."""
        import sqlalchemy as sa

        from proctor.state import _schema as S

        rows: dict[str, list[dict[str, Any]]] = {}
        with team.store.engine.connect() as c:
            for t in S.metadata.sorted_tables:
                if 'run_id' in t.c:
                    found = [dict(r) for r in c.execute(sa.select(t).where(t.c.run_id == run_id)).mappings()]
                    if found:
                        rows[t.name] = found
            q = sa.text('SELECT sql FROM sqlite_master WHERE tbl_name = :t AND sql IS NOT NULL ORDER BY type DESC')
            schema = [sql for t in rows for (sql,) in c.execute(q, {'t': t})]
        return cls(run_id, rows, schema)

    def save(self, path: str) -> None:
        Path(path).write_text(json.dumps({'run_id': self.run_id, 'rows': self.rows, 'schema': self.schema}))

    @classmethod
    def load(cls, path: str) -> Template:
        d = json.loads(Path(path).read_text())
        return cls(d['run_id'], d['rows'], d['schema'])

    def fresh_rows(self, run_id: str, seq: Any) -> list[tuple[str, list[dict[str, Any]]]]:
        """The run's rows for a new run id (every string naming the old run renamed), new span ids."""
        out: dict[str, list[dict[str, Any]]] = {}
        for table, rows in self.rows.items():
            new = []
            for r in rows:
                r = {k: v.replace(self.run_id, run_id) if isinstance(v, str) else v for k, v in r.items()}
                if table == 'proctor_spans':
                    r['span_id'] = uuid.uuid4().hex[:16]
                elif table == 'proctor_audit':
                    r['seq'] = next(seq)
                elif table == 'proctor_ledger':
                    r.pop('id', None)
                new.append(r)
            out[table] = new
        return list(out.items())


class Floor:
    def __init__(self, template: Template, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        for pragma in ('journal_mode=WAL', 'synchronous=NORMAL'):
            self.db.execute(f'PRAGMA {pragma}')
        for sql in template.schema:
            self.db.execute(sql)
        self.template = template
        self.seq = itertools.count(1)
        from opentelemetry import trace
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

        class Collect(SpanProcessor):
            """Keeps ended spans (what a span store's processor gets; the rows are `+rows`' work)."""

            def __init__(self) -> None:
                self.ended: list[Any] = []

            def on_end(self, span: Any) -> None:
                self.ended.append(span)
                if len(self.ended) > 100:
                    self.ended.clear()

        provider = TracerProvider()
        provider.add_span_processor(Collect())
        self.tracer = provider.get_tracer('proctor-floor')
        self.in_context, self.kinds = trace.set_span_in_context, trace.SpanKind
        self.ids = itertools.count()

    def spans(self) -> None:
        made: list[Any] = []
        for name, kind, parent, attrs in self.template.spans:
            ctx = None if parent is None else self.in_context(made[parent])
            made.append(self.tracer.start_span(name, context=ctx, kind=getattr(self.kinds, kind), attributes=attrs))
        for span in reversed(made):
            span.end()

    def rows(self, messages: Any) -> None:
        ModelMessagesTypeAdapter.dump_json(messages)
        run_id = f'floor-{next(self.ids)}'
        tables = self.template.fresh_rows(run_id, self.seq)
        runs = [(t, r) for t, r in tables if t == 'proctor_runs']
        checkpoint = [(t, r[:1]) for t, r in tables if t in self.template.first]
        checkpoint += [(t, r) for t, r in tables if t == 'proctor_delegations']
        rest = [(t, r[1:]) for t, r in tables if t in self.template.first]
        rest += [(t, r) for t, r in tables if t not in self.template.first | {'proctor_runs', 'proctor_delegations'}]
        for batch in (runs, checkpoint, rest):
            self.db.execute('BEGIN IMMEDIATE')
            for table, rows in batch:
                if rows:
                    cols = list(rows[0])
                    sql = f'INSERT INTO {table} ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'
                    self.db.executemany(sql, [tuple(r[c] for c in cols) for r in rows])
            self.db.execute('COMMIT')


def _harness() -> tuple[Any, Any]:
    """`overhead.py` (proctor's team; it puts the peers' harness on the path) and the peers' bare team."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import overhead
    import pydantic_ai_bench

    return overhead, pydantic_ai_bench


def _peak_rss_mb() -> float:
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith('VmHWM:'))


def _rss_child(variant: str, runs: int, peers: str, template: str) -> None:
    """One variant alone in this interpreter: `runs` runs, then its peak RSS (one JSON line)."""
    if variant == 'template' or variant == 'proctor':
        bench, P = _harness()
        bench.C.FakeLLM.configure(k=1, latency=0.0)
        team: Any = bench.build(set(bench.FEATURES), name='bench-floor')

        async def proctor_runs() -> None:
            for _ in range(runs):
                result = await team.run(bench.C.USER_TASK)
            if variant == 'template':
                Template.of_run(team, result.run_id).save(template)

        asyncio.run(proctor_runs())
    else:  # the peers' harness only: no proctor module is imported
        sys.path.insert(0, peers)
        import _common as C
        import pydantic_ai_bench as P

        C.FakeLLM.configure(k=1, latency=0.0)
        P.build()
        agent = _LAST['agent'] = P.TEAM['supervisor']
        floor: Floor | None = None
        if variant == 'floor':
            state = tempfile.mkdtemp(prefix='proctor-floor-')
            from dbos import DBOS

            _register_workflow()
            DBOS(
                config={
                    'name': 'proctor-floor',
                    'system_database_url': f'sqlite:///{state}/dbos.sqlite',
                    'log_level': 'WARNING',
                    'enable_otlp': False,
                }
            )
            DBOS.launch()
            floor = Floor(Template.load(template), os.path.join(state, 'proctor.db'))

        async def bare_runs() -> None:
            for i in range(runs):
                if floor is None:
                    await agent.run(C.USER_TASK)
                    continue
                await _durable_bare(f'floor-{i}', C.USER_TASK)
                floor.spans()
                floor.rows(_LAST['messages'])

        asyncio.run(bare_runs())
    print(json.dumps({'variant': variant, 'runs': runs, 'peak_rss_mb': round(_peak_rss_mb(), 1)}), flush=True)


def _rss(runs: int) -> dict[str, Any]:
    bench, _ = _harness()
    template = os.path.join(tempfile.mkdtemp(prefix='proctor-floor-'), 'template.json')
    peak: dict[str, float] = {}
    for v in ('template', 'pydantic-ai', 'floor', 'proctor'):
        cmd = [sys.executable, __file__, '--rss-child', v, '--runs', str(1 if v == 'template' else runs)]
        cmd += ['--peers', str(bench.SHARED), '--template', template]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        if v != 'template':
            peak[v] = json.loads(out)['peak_rss_mb']
    base = peak['pydantic-ai']
    return {
        'bench': 'proctor-floor-rss',
        'runs': runs,
        'peak_rss_mb': peak,
        'x_pydantic_ai': {v: round(m / base, 2) for v, m in peak.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batches', type=int, default=12, help='turns over every variant')
    p.add_argument('--batch', type=int, default=30, help='runs per variant per turn')
    p.add_argument('--k', type=int, default=1, help='delegations per run (20: the fan-out of scenario b0)')
    p.add_argument('--gc-freeze', action='store_true', help='gc.freeze() after the warm-up (less collector noise)')
    p.add_argument(
        '--rss', action='store_true', help='peak RSS of bare, floor and proctor, each in its own interpreter'
    )
    p.add_argument('--runs', type=int, default=300, help='runs per interpreter with --rss')
    p.add_argument('--rss-child', help=argparse.SUPPRESS)
    p.add_argument('--peers', help=argparse.SUPPRESS)
    p.add_argument('--template', help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.rss_child:
        _rss_child(a.rss_child, a.runs, a.peers, a.template)
        return
    if a.rss:
        print(json.dumps(_rss(a.runs)), flush=True)
        return
    bench, P = _harness()
    bench.C.FakeLLM.configure(k=a.k, latency=0.0)
    P.build()
    _register_workflow()  # before the team's first run launches DBOS
    team: Any = bench.build(set(bench.FEATURES), name='bench-floor')
    bare = _LAST['agent'] = P.TEAM['supervisor']
    task = bench.C.USER_TASK
    ids = itertools.count()
    floor: Floor | None = None

    async def durable_bare() -> Any:
        return await _durable_bare(f'floor-wf-{os.getpid()}-{next(ids)}', task)

    async def run_variant(v: str) -> None:
        assert floor is not None
        if v == 'proctor':
            await team.run(task)
        elif v == 'pydantic-ai':
            await bare.run(task)
        elif v == '+dbos':
            await durable_bare()
        elif v == '+spans':
            await bare.run(task)
            floor.spans()
        elif v == '+rows':
            floor.rows((await bare.run(task)).all_messages())
        else:  # floor
            await durable_bare()
            floor.spans()
            floor.rows(_LAST['messages'])

    cpu: dict[str, list[float]] = {}

    async def run() -> None:
        nonlocal floor
        for _ in range(5):
            result = await team.run(task)  # launches DBOS (the floor's workflow is registered)
        path = os.path.join(tempfile.mkdtemp(prefix='proctor-floor-'), 'proctor.db')
        floor = Floor(Template.of_run(team, result.run_id), path)
        for v in VARIANTS:
            for _ in range(5):
                await run_variant(v)
        if a.gc_freeze:
            gc.collect()
            gc.freeze()
        cpu.update(await take_turns(run_variant, VARIANTS, batches=a.batches, batch=a.batch, shuffle=True))

    asyncio.run(run())
    median = {v: statistics.median(s) for v, s in cpu.items()}
    base = median['pydantic-ai']
    out: dict[str, Any] = {'bench': 'proctor-floor', 'k': a.k, 'batches': a.batches, 'batch': a.batch}
    for v, m in median.items():
        out[f'{v}_cpu_ms_per_run'] = round(m, 2)
        out[f'{v}_x_pydantic_ai'] = round(m / base, 2)
    # Paired by turn (each variant minus bare pydantic-ai's batch of the same turn), then the median.
    out['extra_ms_median_paired'] = {v: round(paired_median(cpu[v], cpu['pydantic-ai']), 2) for v in VARIANTS[1:]}
    out['proctor_over_floor_ms'] = round(paired_median(cpu['proctor'], cpu['floor']), 2)
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
