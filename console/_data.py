"""Read-only queries the console pages need, straight from the state store's tables (sync: call via a thread)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from ..state._records import RunRecord, apply_ledger
from ..state._schema import approvals, guard_events, ledger, runs
from ..state._store import StateStore

__all__ = ('ConsoleData',)

USAGE_DIMENSIONS = ('team', 'project', 'specialist', 'model_id')


def _json(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


class ConsoleData:
    """Spans, guardrail events, approvals and ledger rows of one state store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def list_runs(
        self, *, limit: int = 100, status: str | None = None, team: str | None = None, project: str | None = None
    ) -> list[RunRecord]:
        """Runs newest first, with their tokens, requests and cost as the ledger has them so far (settled
        onto each run's row with every ledger write: `state._records.add_call`)."""
        q = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        for col, value in (('status', status), ('team', team), ('project', project)):
            if value:
                q = q.where(runs.c[col] == value)
        with self.store.engine.connect() as c:
            recs = [RunRecord(**(dict(r) | {'output': _json(r['output'])})) for r in c.execute(q).mappings()]
            apply_ledger(c, recs)
            return recs

    def facets(self) -> dict[str, list[str]]:
        """Distinct teams, projects and statuses of recorded runs (for the filter menus)."""
        with self.store.engine.connect() as c:
            return {
                k: [r[0] for r in c.execute(sa.select(runs.c[k]).distinct().order_by(runs.c[k]))]
                for k in ('team', 'project', 'status')
            }

    def spans_of(self, run_id: str, trace_id: str | None) -> list[dict[str, Any]]:
        """Every stored span of a run (those tagged with its id plus the rest of its trace), oldest first."""
        from dataclasses import asdict

        from ..tracing._store import TraceStore

        return [asdict(s) for s in TraceStore(self.store).spans_of_run(run_id, trace_id)]

    def guard_events_of(self, run_id: str) -> list[dict[str, Any]]:
        with self.store.engine.connect() as c:
            q = sa.select(guard_events).where(guard_events.c.run_id == run_id).order_by(guard_events.c.id)
            return [dict(r) for r in c.execute(q).mappings()]

    def approvals_of(self, run_id: str) -> list[dict[str, Any]]:
        with self.store.engine.connect() as c:
            q = sa.select(approvals).where(approvals.c.run_id == run_id).order_by(approvals.c.created_at)
            return [dict(r) | {'args': _json(r['args'])} for r in c.execute(q).mappings()]

    def costs_by_run(self, run_ids: list[str]) -> dict[str, tuple[float, int]]:
        """Cost and tokens recorded in the ledger so far, per run (a running run's row is not final yet)."""
        if not run_ids:
            return {}
        q = (
            sa.select(
                ledger.c.run_id,
                sa.func.coalesce(sa.func.sum(ledger.c.cost_usd), 0.0),
                sa.func.coalesce(sa.func.sum(ledger.c.input_tokens + ledger.c.output_tokens), 0),
            )
            .where(ledger.c.run_id.in_(run_ids))
            .group_by(ledger.c.run_id)
        )
        with self.store.engine.connect() as c:
            return {r[0]: (float(r[1]), int(r[2])) for r in c.execute(q)}

    def run_workspaces(self, run_ids: list[str]) -> dict[str, str | None]:
        if not run_ids:
            return {}
        with self.store.engine.connect() as c:
            q = sa.select(runs.c.run_id, runs.c.workspace).where(runs.c.run_id.in_(run_ids))
            return {r[0]: r[1] for r in c.execute(q)}

    def ledger_rows(self, *, since: float | None = None, filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Ledger rows (oldest first), optionally since a time and equal to some dimension values."""
        q = sa.select(
            ledger.c.created_at,
            ledger.c.team,
            ledger.c.project,
            ledger.c.specialist,
            ledger.c.model_id,
            ledger.c.input_tokens,
            ledger.c.output_tokens,
            ledger.c.cost_usd,
            ledger.c.run_id,
        ).order_by(ledger.c.created_at)
        if since is not None:
            q = q.where(ledger.c.created_at >= since)
        for k, v in (filters or {}).items():
            if k in USAGE_DIMENSIONS and v:
                q = q.where(ledger.c[k] == v)
        with self.store.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def ledger_values(self) -> dict[str, list[str]]:
        """The distinct values of each usage dimension (for the filter menus)."""
        with self.store.engine.connect() as c:
            return {
                d: [r[0] for r in c.execute(sa.select(ledger.c[d]).distinct().order_by(ledger.c[d]))]
                for d in USAGE_DIMENSIONS
            }
