"""Evaluation-driven routing: `select = "cheapest-passing"` picks the cheapest approved model whose
latest complete evaluation on the specialist's suite meets the bar.

```toml
[policy.specialists.triage]
select = "cheapest-passing"
suite = "triage"          # evals/triage.toml, run by `proctor eval run triage`
min_pass_rate = 0.9
max_age = "14d"
preferred = "sonnet"      # the static preference, used (and said so) when no model passes
```

For each approved candidate (every registry model the run's data class and the policy allow) the
router reads its latest result in a complete run of the suite and gives a verdict: passing, below
the bar, stale (older than `max_age`), or "not evaluated" (no result, or only for another version
of the model than the registry's: a new version is never silently trusted). The cheapest passing
model (by measured cost per case, then price) serves, the other passing ones are its fallbacks,
then the static chain. No passing model: the static preference serves and the reason says so.

The reason (suite, pass rate, date, evaluation run) is the route's reason, so it is on the
delegation row and the trace span; `EvalRouteAudit` appends it to the audit log as a
`route_decision` record once per agent run. Results are read from the team's state store (the run's
`current_scope`), cached per suite for `refresh_s` seconds (a short indexed query, inline like the
ledger's writes on SQLite) and dropped at once when an evaluation in this process completes.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import sqlalchemy.exc

from .._log import get_logger
from ..core._events import ModelCall, RunObserver
from ..state._audit import append_in
from ..state._scope import current_scope
from ..state._store import StateStore
from ..state._writer import BufferedWriter
from ._config import CapabilitySelect, SpecialistPolicy, parse_age
from ._eval_store import EvalRecords, EvalResult
from ._plan import plan_for

if TYPE_CHECKING:
    from ._registry import ModelRegistry

__all__ = ('EvalSelection', 'EvalSelector', 'EvalRouteAudit')

log = get_logger('proctor.eval')


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime('%Y-%m-%d')


@dataclass(frozen=True)
class EvalSelection:
    """What the evaluations said for one routing decision."""

    suite: str
    min_pass_rate: float
    max_age: str
    passing: tuple[str, ...]  # cheapest first
    verdicts: dict[str, str]  # model -> why it passes or not
    chosen: EvalResult | None

    @property
    def head(self) -> str:
        """The route reason's first clause."""
        c = self.chosen
        if c is None:
            return f'no model passes suite {self.suite} (min pass rate {self.min_pass_rate:.0%}, max age {self.max_age}): static preference'
        return (
            f'cheapest passing suite {self.suite}: pass rate {c.pass_rate:.0%} >= {self.min_pass_rate:.0%}, '
            f'${c.cost_per_case:.6f}/case, evaluated {_day(c.created_at)} (eval {c.run_id}'
            + (f', version {c.model_version}' if c.model_version else '')
            + ')'
        )

    def to_json(self) -> dict[str, Any]:
        c = self.chosen
        return {
            'suite': self.suite,
            'min_pass_rate': self.min_pass_rate,
            'max_age': self.max_age,
            'passing': list(self.passing),
            'verdicts': dict(self.verdicts),
            'chosen': None
            if c is None
            else {
                'model_id': c.model_id,
                'model_version': c.model_version,
                'pass_rate': c.pass_rate,
                'cost_per_case': c.cost_per_case,
                'evaluated_at': c.created_at,
                'eval_run_id': c.run_id,
            },
        }


class EvalSelector:
    """Reads the latest evaluation results for routing, cached per store and suite."""

    def __init__(self, store: StateStore | None = None, *, refresh_s: float = 30.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._cache: dict[tuple[str, str], tuple[float, dict[str, EvalResult]]] = {}
        self._lock = threading.Lock()

    def invalidate(self, suite: str | None = None) -> None:
        with self._lock:
            for k in [k for k in self._cache if suite is None or k[1] == suite]:
                del self._cache[k]

    def _store(self) -> StateStore | None:
        scope = current_scope.get()
        return scope.store if scope is not None else self.store

    def latest(self, suite: str) -> dict[str, EvalResult] | None:
        """Model -> its latest complete result on `suite`; None when there is no store to read."""
        store = self._store()
        if store is None:
            return None
        key = (store.url, suite)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.refresh_s:
            return hit[1]
        try:
            got = EvalRecords(store).latest(suite)
        except sqlalchemy.exc.SQLAlchemyError as e:
            log.warning('evaluation results unreadable: routing falls back to the static preference', error=str(e))
            return None
        with self._lock:
            self._cache[key] = (now, got)
        return got

    def select(
        self,
        sp: SpecialistPolicy | CapabilitySelect,
        eligible: Sequence[str],
        registry: ModelRegistry,
        *,
        now: float | None = None,
    ) -> EvalSelection:
        """Verdicts for the `eligible` models (approved, within the constraints) on `sp.suite`."""
        assert sp.suite is not None
        now = time.time() if now is None else now
        max_age = parse_age(sp.max_age)
        latest = self.latest(sp.suite)
        verdicts: dict[str, str] = {}
        passing: list[EvalResult] = []
        for m in eligible:
            r = (latest or {}).get(m)
            version = registry.get(m).version
            if latest is None:
                verdicts[m] = 'not evaluated (no state store to read results from)'
            elif r is None:
                verdicts[m] = f'not evaluated on suite {sp.suite}'
            elif r.model_version != version:
                verdicts[m] = (
                    f'not evaluated at version {version or "unset"} '
                    f'(last evaluated {r.model_version or "unversioned"} on {_day(r.created_at)})'
                )
            elif now - r.created_at > max_age:
                verdicts[m] = f'evaluation stale ({_day(r.created_at)}, older than {sp.max_age})'
            elif r.pass_rate < sp.min_pass_rate:
                verdicts[m] = f'pass rate {r.pass_rate:.0%} < {sp.min_pass_rate:.0%} ({_day(r.created_at)})'
            else:
                verdicts[m] = f'passes: {r.pass_rate:.0%} ({_day(r.created_at)})'
                passing.append(r)

        def price(r: EvalResult) -> tuple[float, float, str]:
            info = registry.get(r.model_id)
            return (r.cost_per_case, info.usd_per_m_input + info.usd_per_m_output, r.model_id)

        passing.sort(key=price)
        return EvalSelection(
            sp.suite,
            sp.min_pass_rate,
            sp.max_age,
            tuple(r.model_id for r in passing),
            verdicts,
            passing[0] if passing else None,
        )


class _AuditBuffer(BufferedWriter):
    needs_chain_lock = True

    def write_batch(self, conn: sa.Connection, items: list[Any]) -> None:
        append_in(conn, items)

    def queue(self, item: tuple[str, dict[str, Any], str, str]) -> None:
        self._buf.append(item)


class EvalRouteAudit(RunObserver):
    """Appends a `route_decision` audit record for each agent run routed by evaluation results
    (queued, written with the run's other records; idempotent on the agent run)."""

    def __init__(self) -> None:
        self._buffers: dict[str, _AuditBuffer] = {}
        self._seen: dict[str, None] = {}  # idempotency keys queued lately (bounded)

    async def before_model_call(self, call: ModelCall) -> None:
        plan = plan_for(call.deps.specialist)
        scope = current_scope.get()
        if plan is None or plan.evaluation is None or scope is None or not scope.record:
            return
        d = call.deps
        key = f'route:{d.delegation_id or d.run_id}:{d.agent_path}'
        if key in self._seen:
            return
        self._seen[key] = None
        while len(self._seen) > 10_000:
            del self._seen[next(iter(self._seen))]
        buf = self._buffers.get(scope.store.url)
        if buf is None:
            buf = self._buffers[scope.store.url] = _AuditBuffer(scope.store)
        record = {
            'run_id': d.run_id,
            'team': d.team,
            'project': d.project,
            'agent_path': d.agent_path,
            'specialist': d.specialist,
            'delegation_id': d.delegation_id,
            'data_class': d.data_class,
            'model_id': plan.primary,
            'reason': plan.reason,
            'evaluation': plan.evaluation,
        }
        buf.queue(('route_decision', record, d.run_id, key))
