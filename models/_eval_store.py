"""Evaluation results in the state store (SQLite, or Postgres when scaled out): runs, per-model results, cases.

A run is `running` from its first case, and `complete` only once the results of every model are
written, in the same transaction; a run that stopped (a budget, an error, Ctrl-C) is `failed` and
keeps its case rows for inspection, but no result rows: the router and the report read results,
so they never see a partial run as complete.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import sqlalchemy as sa

from ..exceptions import UserError
from ..state._schema import eval_cases, eval_results, eval_runs
from ..state._store import StateStore

__all__ = ('EvalResult', 'EvalRunRecord', 'EvalRecords', 'Regression', 'compare_runs')


@dataclass(frozen=True)
class EvalResult:
    """One model's numbers in one evaluation run."""

    run_id: str
    model_id: str
    suite: str
    model_version: str | None
    cases: int
    skipped: int
    passed: int
    pass_rate: float
    mean_score: float
    p50_ms: float
    p95_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_per_case: float
    judge_cost_usd: float
    errors: int
    created_at: float

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {'tokens': self.tokens}


@dataclass(frozen=True)
class EvalRunRecord:
    run_id: str
    suite: str
    subject: str
    suite_path: str | None
    suite_hash: str
    status: str
    models: list[str]
    repeat: int
    cases: int
    project: str
    started_at: float
    finished_at: float | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_RESULT_FIELDS = [f.name for f in fields(EvalResult)]


def _result(row: Any) -> EvalResult:
    return EvalResult(**{k: row[k] for k in _RESULT_FIELDS})


def _run(row: Any) -> EvalRunRecord:
    d = dict(row)
    d['models'] = json.loads(d['models'])
    return EvalRunRecord(**d)


class EvalRecords:
    """Reads and writes the evaluation tables of one store (sync: from async code, `await store.call`)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    # ------------------------------------------------------------------ writes

    def start(self, run: EvalRunRecord) -> None:
        with self.store.engine.begin() as c:
            c.execute(eval_runs.insert().values(**(run.to_json() | {'models': json.dumps(run.models)})))

    def finish(
        self,
        run_id: str,
        case_rows: list[dict[str, Any]],
        results: list[EvalResult] | None,
        *,
        error: str | None = None,
    ) -> None:
        """Write the case rows, then either the results and `complete` (one transaction) or `failed`."""
        now = time.time()
        with self.store.engine.begin() as c:
            if case_rows:
                c.execute(eval_cases.insert(), case_rows)
            if results is not None and error is None:
                if results:
                    c.execute(eval_results.insert(), [asdict(r) for r in results])
                status = 'complete'
            else:
                status = 'failed'
            c.execute(
                eval_runs.update()
                .where(eval_runs.c.run_id == run_id)
                .values(status=status, finished_at=now, error=error)
            )

    # ------------------------------------------------------------------ reads

    def runs(self, *, suite: str | None = None, limit: int = 50) -> list[EvalRunRecord]:
        """Runs newest first."""
        q = sa.select(eval_runs).order_by(eval_runs.c.started_at.desc()).limit(limit)
        if suite is not None:
            q = q.where(eval_runs.c.suite == suite)
        with self.store.engine.connect() as c:
            return [_run(r) for r in c.execute(q).mappings()]

    def get(self, run_id: str) -> EvalRunRecord:
        """A run by id or unique prefix."""
        with self.store.engine.connect() as c:
            rows = (
                c.execute(sa.select(eval_runs).where(eval_runs.c.run_id.startswith(run_id, autoescape=True)).limit(2))
                .mappings()
                .all()
            )
        if not rows:
            raise UserError(f'no evaluation run {run_id!r} (see `proctor eval report`)')
        if len(rows) > 1 and rows[0]['run_id'] != run_id:
            raise UserError(f'evaluation run prefix {run_id!r} is ambiguous: give more of the id')
        return _run(rows[0])

    def results(self, run_id: str) -> list[EvalResult]:
        q = sa.select(eval_results).where(eval_results.c.run_id == run_id).order_by(eval_results.c.model_id)
        with self.store.engine.connect() as c:
            return [_result(r) for r in c.execute(q).mappings()]

    def cases(self, run_id: str, model_id: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(eval_cases).where(eval_cases.c.run_id == run_id)
        if model_id is not None:
            q = q.where(eval_cases.c.model_id == model_id)
        q = q.order_by(eval_cases.c.model_id, eval_cases.c.case_name, eval_cases.c.repeat)
        with self.store.engine.connect() as c:
            return [dict(r) | {'checks': json.loads(r['checks'])} for r in c.execute(q).mappings()]

    def latest(self, suite: str) -> dict[str, EvalResult]:
        """Each model's result in the newest complete run of `suite` that evaluated it."""
        r, e = eval_results.c, eval_runs.c
        q = (
            sa.select(eval_results)
            .join(eval_runs, e.run_id == r.run_id)
            .where(r.suite == suite, e.status == 'complete')
            .order_by(r.created_at.desc(), r.run_id.desc())
        )
        out: dict[str, EvalResult] = {}
        with self.store.engine.connect() as c:
            for row in c.execute(q).mappings():
                out.setdefault(row['model_id'], _result(row))
        return out

    def suites(self) -> list[str]:
        with self.store.engine.connect() as c:
            return sorted(c.execute(sa.select(eval_runs.c.suite).distinct()).scalars())

    def previous_complete(self, run: EvalRunRecord) -> EvalRunRecord | None:
        """The complete run of the same suite before `run`."""
        e = eval_runs.c
        q = (
            sa.select(eval_runs)
            .where(e.suite == run.suite, e.status == 'complete', e.started_at < run.started_at)
            .order_by(e.started_at.desc())
            .limit(1)
        )
        with self.store.engine.connect() as c:
            row = c.execute(q).mappings().first()
        return _run(row) if row is not None else None


@dataclass(frozen=True)
class Regression:
    """A model's change between two runs of a suite."""

    model_id: str
    version_a: str | None
    version_b: str | None
    pass_rate_a: float | None
    pass_rate_b: float | None
    mean_score_a: float | None
    mean_score_b: float | None
    cost_per_case_a: float | None
    cost_per_case_b: float | None
    status: str  # regressed|improved|same|added|removed
    newly_failing: list[str]  # cases that passed in A and fail in B

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare_runs(records: EvalRecords, run_a: str, run_b: str) -> tuple[EvalRunRecord, EvalRunRecord, list[Regression]]:
    """Per model: pass rate (and score, cost) in A and in B, and the cases that started failing."""
    a, b = records.get(run_a), records.get(run_b)
    for r in (a, b):
        if r.status != 'complete':
            raise UserError(f'evaluation run {r.run_id} is {r.status}, not complete: it has no results to compare')
    if a.suite != b.suite:
        raise UserError(f'runs {a.run_id} and {b.run_id} evaluate different suites ({a.suite}, {b.suite})')
    ra = {x.model_id: x for x in records.results(a.run_id)}
    rb = {x.model_id: x for x in records.results(b.run_id)}

    def verdicts(run_id: str, model: str) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for row in records.cases(run_id, model):
            out[row['case_name']] = out.get(row['case_name'], True) and bool(row['passed'])
        return out

    rows: list[Regression] = []
    for m in sorted(set(ra) | set(rb)):
        x, y = ra.get(m), rb.get(m)
        if x is None or y is None:
            status = 'added' if x is None else 'removed'
            failing: list[str] = []
        else:
            eps = 1e-9
            status = (
                'regressed'
                if y.pass_rate < x.pass_rate - eps
                else 'improved'
                if y.pass_rate > x.pass_rate + eps
                else 'same'
            )
            va, vb = verdicts(a.run_id, m), verdicts(b.run_id, m)
            failing = sorted(c for c, ok in vb.items() if not ok and va.get(c))
        rows.append(
            Regression(
                m,
                x.model_version if x else None,
                y.model_version if y else None,
                x.pass_rate if x else None,
                y.pass_rate if y else None,
                x.mean_score if x else None,
                y.mean_score if y else None,
                x.cost_per_case if x else None,
                y.cost_per_case if y else None,
                status,
                failing,
            )
        )
    return a, b, rows
