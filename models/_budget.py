"""Budgets: limits in USD and tokens per team, project, run, specialist and model, enforced before the call.

`BudgetGuard` is a `RunObserver`. Before each model call it reserves an estimate (prompt tokens ×
the highest input price of the models that may serve the call + the output allowance × the highest
output price) against every budget the call falls under, in one transaction whose conditional
UPDATEs admit the reservation only while `spent + reserved + estimate <= limit`. So concurrent
runs, in one process or many sharing the database, never overspend by more than what one call
uses beyond its estimate. After the call it settles (reservation out, real cost in); a failed call
releases its reservation. All three are idempotent on the call's key (hooks re-run on recovery).
A refused reservation raises `BudgetExceeded` naming the budget, its limit and what was spent.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import anyio
import sqlalchemy as sa
from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart

from ..core._deps import RunDeps
from ..core._events import ModelCall, RunObserver
from ..exceptions import BudgetExceeded, ConfigError, RunError
from ..state._schema import budget_usage, ledger
from ..state._scope import current_scope
from ..state._store import StateStore
from ._ledger import call_cost, insert_ignore
from ._plan import plan_for, set_skipped

if TYPE_CHECKING:
    from ._registry import ModelRegistry

__all__ = ('Budget', 'BudgetGuard', 'BudgetBook', 'budget_status', 'estimate_input_tokens')

Level = Literal['team', 'project', 'run', 'specialist', 'model']
LEVELS: tuple[str, ...] = ('team', 'project', 'run', 'specialist', 'model')
_DEFAULT_OUTPUT = 4096


@dataclass(frozen=True)
class Budget:
    """A limit on spend. `name='*'` applies it to each team/project/... separately. `period`: 'total'
    (ever), 'day' / 'month' (UTC calendar), or 'run' (per run; always for level 'run')."""

    level: Level
    name: str = '*'
    usd: float | None = None
    tokens: int | None = None
    period: Literal['total', 'day', 'month', 'run'] = 'total'

    def __post_init__(self) -> None:
        key = f'budgets.{self.level}' + ('' if self.level == 'run' else f'.{self.name}')
        if self.level not in LEVELS:
            raise ConfigError(f'unknown budget level {self.level!r} (one of {", ".join(LEVELS)})', key='budgets')
        if self.usd is None and self.tokens is None:
            raise ConfigError('a budget needs usd or tokens', key=key)
        for unit, v in (('usd', self.usd), ('tokens', self.tokens)):
            if v is not None and (not isinstance(v, (int, float)) or v < 0 or math.isnan(v)):
                raise ConfigError(f'{unit} must be a non-negative number, not {v!r}', key=key)
        if self.period not in ('total', 'day', 'month', 'run'):
            raise ConfigError(f'unknown period {self.period!r} (total, day, month or run)', key=key)
        if self.level == 'run':
            object.__setattr__(self, 'period', 'run')

    @property
    def label(self) -> str:
        return 'run' if self.level == 'run' else f'{self.level}:{self.name}'

    def subject(self, deps: RunDeps, model_id: str) -> str | None:
        """The team/project/... this budget limits for a call, or None if it does not apply. A
        specialist's budget covers its sub-team too: a call of `supervisor>coding>tester` counts
        toward `specialist:tester` and `specialist:coding` (the lead of the branch)."""
        if self.level == 'specialist' and self.name != '*' and self.name in deps.agent_path.split('>')[1:]:
            return self.name
        value = {
            'team': deps.team,
            'project': deps.project,
            'run': deps.run_id,
            'specialist': deps.specialist,
            'model': model_id,
        }[self.level]
        return value if self.name in ('*', value) else None

    def scope(self, subject: str, run_id: str, now: float) -> str:
        base = f'{self.level}:{subject}'
        if self.period == 'day':
            return base + '@' + datetime.fromtimestamp(now, UTC).strftime('%Y-%m-%d')
        if self.period == 'month':
            return base + '@' + datetime.fromtimestamp(now, UTC).strftime('%Y-%m')
        if self.period == 'run' and self.level != 'run':
            return base + '@run:' + run_id
        return base

    def window_start(self, now: float) -> float | None:
        d = datetime.fromtimestamp(now, UTC)
        if self.period == 'day':
            return d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        if self.period == 'month':
            return d.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
        return None


def _in_branch(lead: str) -> Any:
    """Ledger rows of the members of sub-teams led by `lead` (`...>lead>...` in their path)."""
    pattern = '%>' + lead.replace('_', '\\_') + '>%'
    return ledger.c.agent_path.like(pattern, escape='\\')


def estimate_input_tokens(messages: Sequence[Any]) -> int:
    """A deliberately generous prompt-token estimate (3 characters a token, plus overhead)."""
    chars = 0
    for m in messages:
        if isinstance(m, ModelRequest):
            chars += len(m.instructions or '') if isinstance(getattr(m, 'instructions', None), str) else 0
        if isinstance(m, (ModelRequest, ModelResponse)):
            for p in m.parts:
                if isinstance(p, ToolCallPart):
                    chars += len(p.args_as_json_str()) + len(p.tool_name)
                elif isinstance(p, ToolReturnPart):
                    chars += len(p.model_response_str())
                else:
                    content = getattr(p, 'content', None)
                    chars += len(content) if isinstance(content, str) else len(str(content or ''))
    return 64 + math.ceil(chars / 3) + 8 * len(messages)


@dataclass(frozen=True)
class _Refusal:
    budget: Budget
    scope: str
    unit: str
    limit: float
    spent: float
    reserved: float
    needed: float


class _Refused(Exception):
    def __init__(self, refusal: _Refusal) -> None:
        self.refusal = refusal


# Hot-path statements as plain SQL (valid on SQLite >= 3.35 and Postgres): building them with the
# expression language cost more than running them.
_T = sa.text
_INSERT_RESERVATION = _T(
    'INSERT INTO proctor_budget_reservations (call_key, run_id, scopes, usd, tokens, status, created_at, settled_at) '
    'VALUES (:key, :run_id, :scopes, :usd, :tokens, :status, :now, :settled_at) ON CONFLICT (call_key) DO NOTHING'
)
_RETURNING = ' RETURNING scope, spent_usd + reserved_usd, limit_usd, spent_tokens + reserved_tokens, limit_tokens'
_RESERVE_SET = (
    'UPDATE proctor_budget_usage SET reserved_usd = reserved_usd + :usd, reserved_tokens = reserved_tokens + '
    ':tokens, limit_usd = :lu, limit_tokens = :lt, updated_at = :now WHERE scope = :scope'
)
_RESERVE = {
    (True, False): _T(_RESERVE_SET + ' AND spent_usd + reserved_usd + :usd <= :lu + 1e-12' + _RETURNING),
    (False, True): _T(_RESERVE_SET + ' AND spent_tokens + reserved_tokens + :tokens <= :lt' + _RETURNING),
    (True, True): _T(
        _RESERVE_SET + ' AND spent_usd + reserved_usd + :usd <= :lu + 1e-12'
        ' AND spent_tokens + reserved_tokens + :tokens <= :lt' + _RETURNING
    ),
}
_SPEND = _T(
    'UPDATE proctor_budget_usage SET spent_usd = spent_usd + :usd, spent_tokens = spent_tokens + :tokens, '
    'updated_at = :now WHERE scope = :scope' + _RETURNING
)
_UNRESERVE = _T(
    'UPDATE proctor_budget_usage SET reserved_usd = reserved_usd - :usd, reserved_tokens = reserved_tokens - '
    ':tokens, updated_at = :now WHERE scope = :scope' + _RETURNING
)
_ROW = _T(
    'SELECT spent_usd, reserved_usd, spent_tokens, reserved_tokens FROM proctor_budget_usage WHERE scope = :scope'
)
_EXISTS = _T('SELECT 1 FROM proctor_budget_usage WHERE scope = :scope')
_CLAIM = _T(
    'UPDATE proctor_budget_reservations SET status = :status, settled_at = :now WHERE call_key = :key '
    "AND status = 'reserved' RETURNING scopes, usd, tokens"
)
_STATUS = _T('SELECT status FROM proctor_budget_reservations WHERE call_key = :key')

Levels = dict[str, tuple[float, 'float | None', int, 'int | None']]


def _level(row: Any) -> tuple[str, tuple[float, float | None, int, int | None]]:
    return row[0], (float(row[1]), row[2], int(row[3]), row[4])


class BudgetBook:
    """The SQL side of budgets in one state store (sync; atomic per call)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.engine = store.engine
        self._known: set[str] = set()  # scopes known to have a row (rows are never deleted)

    def _ensure_scope(
        self, c: sa.Connection, scope: str, b: Budget, subject: str, run_id: str, now: float, key: str
    ) -> None:
        if scope in self._known:
            return
        if c.execute(_EXISTS, {'scope': scope}).first() is None:
            # A budget added later still counts what its scope spent before (from the ledger).
            col = {
                'team': ledger.c.team,
                'project': ledger.c.project,
                'run': ledger.c.run_id,
                'specialist': ledger.c.specialist,
                'model': ledger.c.model_id,
            }[b.level]
            q = sa.select(
                sa.func.coalesce(sa.func.sum(ledger.c.cost_usd), 0.0),
                sa.func.coalesce(sa.func.sum(ledger.c.input_tokens + ledger.c.output_tokens), 0),
            ).where(
                sa.or_(col == subject, _in_branch(subject)) if b.level == 'specialist' else col == subject,
                sa.or_(ledger.c.call_key.is_(None), ledger.c.call_key != key),
            )
            if b.period == 'run' and b.level != 'run':
                q = q.where(ledger.c.run_id == run_id)
            if (start := b.window_start(now)) is not None:
                q = q.where(ledger.c.created_at >= start)
            usd, tokens = c.execute(q).one()
            c.execute(
                insert_ignore(
                    c,
                    budget_usage,
                    dict(
                        scope=scope,
                        limit_usd=b.usd,
                        limit_tokens=b.tokens,
                        spent_usd=float(usd),
                        spent_tokens=int(tokens),
                        reserved_usd=0.0,
                        reserved_tokens=0,
                        updated_at=now,
                    ),
                    ['scope'],
                )
            )
        self._known.add(scope)

    def reserve(self, key: str, deps: RunDeps, entries: list[tuple[str, Budget, str]], usd: float, tokens: int) -> Any:
        """Reserve against every (scope, budget, subject); a `_Refusal` if one would go over, else the
        scopes' new levels. Nothing changes if `key` is already reserved or settled."""
        now = time.time()
        levels: Levels = {}
        try:
            with self.engine.begin() as c:
                row = dict(
                    key=key,
                    run_id=deps.run_id,
                    scopes=json.dumps(sorted(s for s, _, _ in entries)),
                    usd=usd,
                    tokens=tokens,
                    status='reserved',
                    now=now,
                    settled_at=None,
                )
                if c.execute(_INSERT_RESERVATION, row).rowcount == 0:
                    return levels
                for scope, b, subject in sorted(entries, key=lambda e: e[0]):  # one order: no deadlocks on Postgres
                    self._ensure_scope(c, scope, b, subject, deps.run_id, now, key)
                    stmt = _RESERVE[(b.usd is not None, b.tokens is not None)]
                    params = dict(usd=usd, tokens=tokens, lu=b.usd, lt=b.tokens, now=now, scope=scope)
                    got = c.execute(stmt, params).first()
                    if got is None:
                        raise _Refused(self._refusal(c, scope, b, usd, tokens))
                    levels.update([_level(got)])
                return levels
        except _Refused as r:
            return r.refusal

    @staticmethod
    def _refusal(c: sa.Connection, scope: str, b: Budget, usd: float, tokens: int) -> _Refusal:
        spent_usd, res_usd, spent_tok, res_tok = c.execute(_ROW, {'scope': scope}).one()
        # On Postgres this read can already see other calls' reservations released: with one limit,
        # that limit is the one that refused.
        if b.usd is not None and (b.tokens is None or spent_usd + res_usd + usd > b.usd + 1e-12):
            return _Refusal(b, scope, 'usd', b.usd, float(spent_usd), float(res_usd), usd)
        return _Refusal(b, scope, 'tokens', float(b.tokens or 0), float(spent_tok), float(res_tok), float(tokens))

    def settle(
        self, key: str, usd: float, tokens: int, entries: list[tuple[str, Budget, str]], deps: RunDeps
    ) -> Levels:
        """Replace the call's reservation by its real cost (once per key); the scopes' new levels."""
        now = time.time()
        levels: Levels = {}
        with self.engine.begin() as c:
            claimed = c.execute(_CLAIM, {'status': 'settled', 'now': now, 'key': key}).first()
            if claimed is None:
                if c.execute(_STATUS, {'key': key}).first() is not None:
                    return levels  # settled or released already (a recovered run re-running its hooks)
                marker = dict(
                    key=key,
                    run_id=deps.run_id,
                    scopes='[]',
                    usd=0.0,
                    tokens=0,
                    status='settled',
                    now=now,
                    settled_at=now,
                )
                if c.execute(_INSERT_RESERVATION, marker).rowcount == 0:
                    return levels
            else:
                levels.update(self._unreserve(c, json.loads(claimed[0]), claimed[1], claimed[2], now))
            for scope, b, subject in sorted(entries, key=lambda e: e[0]):
                self._ensure_scope(c, scope, b, subject, deps.run_id, now, key)
                got = c.execute(_SPEND, dict(usd=usd, tokens=tokens, now=now, scope=scope)).first()
                if got is not None:
                    levels.update([_level(got)])
        return levels

    def release(self, key: str) -> Levels:
        """Give a failed call's reservation back (once per key)."""
        now = time.time()
        with self.engine.begin() as c:
            claimed = c.execute(_CLAIM, {'status': 'released', 'now': now, 'key': key}).first()
            if claimed is None:
                return {}
            return self._unreserve(c, json.loads(claimed[0]), claimed[1], claimed[2], now)

    @staticmethod
    def _unreserve(c: sa.Connection, scopes: list[str], usd: float, tokens: int, now: float) -> Levels:
        levels: Levels = {}
        for scope in sorted(scopes):
            got = c.execute(_UNRESERVE, dict(usd=usd, tokens=tokens, now=now, scope=scope)).first()
            if got is not None:
                levels.update([_level(got)])
        return levels


def budget_status(store: StateStore) -> list[dict[str, Any]]:
    """Every budget scope recorded in `store`: limit, spent, reserved, fraction used, level ok|near|over."""
    u = budget_usage.c
    with store.engine.connect() as c:
        rows = c.execute(sa.select(budget_usage).order_by(u.scope)).mappings().all()
    out = []
    for r in rows:
        fr = [
            (r['spent_usd'] + r['reserved_usd']) / r['limit_usd'] if r['limit_usd'] else None,
            (r['spent_tokens'] + r['reserved_tokens']) / r['limit_tokens'] if r['limit_tokens'] else None,
        ]
        fraction = max((f for f in fr if f is not None), default=0.0)
        level, _, name = r['scope'].partition(':')
        out.append(
            {
                'scope': r['scope'],
                'level': level,
                'name': name,
                'limit_usd': r['limit_usd'],
                'limit_tokens': r['limit_tokens'],
                'spent_usd': r['spent_usd'],
                'spent_tokens': r['spent_tokens'],
                'reserved_usd': r['reserved_usd'],
                'reserved_tokens': r['reserved_tokens'],
                'fraction': fraction,
                'status': 'over' if fraction >= 1 else 'near' if fraction >= 0.8 else 'ok',
            }
        )
    return out


class BudgetGuard(RunObserver):
    """Enforces `budgets` on every model call of the teams it observes (see the module docstring).

    `store=None`: the store of the team being observed. `pressure()` tells the router how close
    the budgets are (from this process's latest view) so it can degrade to a cheaper model.
    """

    def __init__(
        self, budgets: Sequence[Budget], *, registry: ModelRegistry | None = None, store: StateStore | None = None
    ) -> None:
        self.budgets = list(budgets)
        self.registry = registry
        self.store = store
        self._books: dict[str, BudgetBook] = {}
        self._levels: dict[str, tuple[float, float | None, int, int | None]] = {}

    def _book(self, call: ModelCall) -> BudgetBook:
        store = self.store
        if store is None:
            scope = current_scope.get()
            if scope is None:
                raise RunError(f'budget check outside a team run (run {call.deps.run_id})', run_id=call.deps.run_id)
            store = scope.store
        book = self._books.get(store.url)
        if book is None:
            book = self._books[store.url] = BudgetBook(store)
        return book

    def entries(self, deps: RunDeps, model_id: str, now: float | None = None) -> list[tuple[str, Budget, str]]:
        now = time.time() if now is None else now
        out: dict[str, tuple[str, Budget, str]] = {}
        for b in self.budgets:
            subject = b.subject(deps, model_id)
            if subject is not None:
                scope = b.scope(subject, deps.run_id, now)
                prev = out.get(scope)
                # Two budgets on one scope (e.g. 'team:*' and 'team:a'): the stricter one decides.
                if prev is None or (b.usd if b.usd is not None else math.inf) < (
                    prev[1].usd if prev[1].usd is not None else math.inf
                ):
                    out[scope] = (scope, b, subject)
        return list(out.values())

    def _chain(self, call: ModelCall) -> list[str]:
        plan = plan_for(call.deps.specialist)
        return list(plan.tiers[plan.tier_for(call.messages)]) if plan is not None else [call.model_id]

    def _prices(self, ids: list[str], call: ModelCall) -> tuple[str, float, float, int]:
        infos = [self.registry.get(m) for m in ids if self.registry is not None and m in self.registry]
        p_in = max((i.usd_per_m_input for i in infos), default=0.0)
        p_out = max((i.usd_per_m_output for i in infos), default=0.0)
        settings = call.model_settings or {}
        allowance = settings.get('max_tokens') if isinstance(settings, dict) else None
        out = int(allowance or max((i.output_allowance for i in infos), default=_DEFAULT_OUTPUT))
        return ids[0], p_in, p_out, out

    async def before_model_call(self, call: ModelCall) -> None:
        chain = self._chain(call)
        prompt = estimate_input_tokens(call.messages)
        skip: dict[str, str] = {}
        set_skipped(skip)
        for i in range(len(chain)):
            primary, p_in, p_out, max_out = self._prices(chain[i:], call)
            entries = self.entries(call.deps, primary)
            if not entries:
                set_skipped(skip)
                return
            usd, tokens = (prompt * p_in + max_out * p_out) / 1e6, prompt + max_out
            book = self._book(call)
            result = await book.store.call(book.reserve, call.key, call.deps, entries, usd, tokens)
            if not isinstance(result, _Refusal):
                self._levels.update(result)
                set_skipped(skip)
                return
            f = result
            # Remember it cannot take a call like this one, so the router skips it next time.
            lim_usd, lim_tok = f.budget.usd, f.budget.tokens
            self._levels[f.scope] = (
                (f.spent + f.reserved + f.needed) if f.unit == 'usd' else 0.0,
                lim_usd,
                int(f.spent + f.reserved + f.needed) if f.unit == 'tokens' else 0,
                lim_tok,
            )
            if f.budget.level == 'model' and i + 1 < len(chain):
                # This model's own budget is used up: the chain's next approved model serves instead.
                skip[primary] = f'model budget {f.scope} used up'
                continue
            raise BudgetExceeded(
                budget=f.scope,
                limit=f.limit,
                spent=f.spent,
                unit=f.unit,
                run_id=call.deps.run_id,
                detail=f'{f.reserved:g} reserved by calls in flight, this call needs up to {f.needed:g}',
            )

    async def after_model_call(self, call: ModelCall, response: ModelResponse) -> None:
        cost = call_cost(call, response, self.registry)
        entries = self.entries(call.deps, cost.model_id)
        book = self._book(call)
        with anyio.CancelScope(shield=True):
            self._levels.update(
                await book.store.call(book.settle, call.key, cost.cost_usd, cost.tokens, entries, call.deps)
            )

    async def on_model_error(self, call: ModelCall, error: BaseException) -> None:
        try:
            book = self._book(call)
        except RunError:
            return
        with anyio.CancelScope(shield=True):
            self._levels.update(await book.store.call(book.release, call.key))

    # ------------------------------------------------------------------ for the router

    def pressure(self, deps: RunDeps, model_id: str) -> tuple[str, float] | None:
        """The most used budget (scope, fraction of its limit) a call like this falls under, or None."""
        worst: tuple[str, float] | None = None
        for scope, _b, _s in self.entries(deps, model_id):
            level = self._levels.get(scope)
            if level is None:
                continue
            used_usd, lim_usd, used_tok, lim_tok = level
            fr = max(
                used_usd / lim_usd if lim_usd else (math.inf if lim_usd == 0 else 0.0),
                used_tok / lim_tok if lim_tok else (math.inf if lim_tok == 0 else 0.0),
            )
            if worst is None or fr > worst[1]:
                worst = (scope, fr)
        return worst

    def model_exhausted(self, deps: RunDeps, model_id: str) -> str | None:
        """The model-level budget scope of `model_id` if it is used up, else None."""
        for scope, b, _ in self.entries(deps, model_id):
            if b.level == 'model':
                level = self._levels.get(scope)
                if level is not None and (
                    (level[1] is not None and level[0] >= level[1]) or (level[3] is not None and level[2] >= level[3])
                ):
                    return scope
        return None
