"""The cost ledger: every model call's tokens and cost, and every attempt at it, in the state store.

Rows are attributed through delegation: a specialist's call carries the run, team and project of
the run that delegated to it, so a sub-agent's spend counts toward its run. Writes are idempotent
on the call's key (a recovered durable run re-runs its hooks for recorded steps without adding
rows). `Ledger` answers the usage questions (`proctor usage`): by team, project, specialist or
model, since a time.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import sqlalchemy as sa
from pydantic_ai.messages import ModelResponse

from .._log import get_logger
from ..core._events import ModelCall, RunObserver
from ..exceptions import UserError
from ..state import _sql
from ..state._records import add_call, add_calls
from ..state._schema import ledger, model_attempts
from ..state._scope import current_scope
from ..state._store import StateStore
from ..state._writer import BufferedWriter, flusher
from ._fallback import attempts_of
from ._plan import plan_for

if TYPE_CHECKING:
    from ._registry import ModelRegistry

__all__ = (
    'Ledger',
    'LedgerObserver',
    'LedgerEntry',
    'UsageRow',
    'CallCost',
    'call_cost',
    'insert_ignore',
    'USAGE_DIMENSIONS',
)

log = get_logger('proctor.ledger')

USAGE_DIMENSIONS = ('team', 'project', 'specialist', 'model')
_COLUMNS = {
    'team': ledger.c.team,
    'project': ledger.c.project,
    # The supervisor and its specialists by name; a member of a sub-team by its path
    # (`supervisor>coding>tester`): a grandchild's spend stays apart from its lead's, and says whose member it is.
    'specialist': sa.case((ledger.c.agent_path.like('%>%>%'), ledger.c.agent_path), else_=ledger.c.specialist).label(
        'specialist'
    ),
    'model': ledger.c.model_id,
}


def insert_ignore(conn: sa.Connection, table: sa.Table, values: dict[str, Any], keys: list[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING, for SQLite and Postgres."""
    if conn.dialect.name == 'postgresql':
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)


@dataclass(frozen=True)
class CallCost:
    """What one answered model call cost, on the model that actually served it."""

    model_id: str
    version: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def call_cost(call: ModelCall, response: ModelResponse, registry: ModelRegistry | None) -> CallCost:
    """The served model (stamped by the routed model, else the call's) and its price × real usage."""
    cached = call.extra.get('proctor.cost')
    if cached is not None:
        return cached
    meta = (response.metadata or {}).get('proctor') or {}
    plan = plan_for(call.deps.specialist)
    model_id = meta.get('model_id') or call.model_id
    if not meta and plan is not None and (registry is None or model_id not in registry):
        model_id = plan.tiers[plan.tier_for(call.messages)][0]  # a streamed request is not stamped: its first model
    u = response.usage
    cost, version = 0.0, meta.get('version')
    if registry is not None and model_id in registry:
        info = registry.get(model_id)
        cost, version = info.cost(u.input_tokens, u.output_tokens), version or info.version
    out = CallCost(model_id, version, u.input_tokens, u.output_tokens, cost)
    call.extra['proctor.cost'] = out
    if plan is not None:
        plan.costs[call.key] = cost  # the route's cost for the delegation row and the run total
    return out


@dataclass(frozen=True)
class LedgerEntry:
    run_id: str
    team: str
    project: str
    specialist: str
    agent_path: str
    model_id: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    created_at: float
    call_key: str | None = None
    data_class: str | None = None
    model_version: str | None = None


@dataclass(frozen=True)
class UsageRow:
    key: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _entry_row(e: LedgerEntry) -> dict[str, Any]:
    # Not `asdict`: it deep-copies every field, a tenth of a flush's time on the write path.
    return {c: getattr(e, c) for c in _ENTRY_COLS}


_ENTRY_COLS = (
    'run_id',
    'team',
    'project',
    'specialist',
    'agent_path',
    'model_id',
    'input_tokens',
    'output_tokens',
    'cost_usd',
    'created_at',
    'call_key',
    'data_class',
    'model_version',
)
# Plain SQL on the write path (SQLite and Postgres): cheaper than building the statement every call.
_INSERT_ENTRY = sa.text(
    f'INSERT INTO proctor_ledger ({", ".join(_ENTRY_COLS)}) VALUES '
    f'({", ".join(":" + c for c in _ENTRY_COLS)}) ON CONFLICT (call_key) DO NOTHING'
)
_ATTEMPT_COLS = (
    'call_key',
    'seq',
    'run_id',
    'agent_path',
    'specialist',
    'model_id',
    'tier',
    'status',
    'error',
    'elapsed_ms',
    'created_at',
)
_INSERT_ATTEMPT = sa.text(
    f'INSERT INTO proctor_model_attempts ({", ".join(_ATTEMPT_COLS)}) VALUES '
    f'({", ".join(":" + c for c in _ATTEMPT_COLS)}) ON CONFLICT (call_key, seq) DO NOTHING'
)


def _store_of(where: StateStore | str | os.PathLike[str] | None) -> StateStore:
    return where if isinstance(where, StateStore) else StateStore(where)


class Ledger:
    """Read and write the ledger of one state store (sync: call through a thread from async code)."""

    def __init__(self, store: StateStore | str | os.PathLike[str] | None = None) -> None:
        self.store = _store_of(store)
        self.engine = self.store.engine

    @classmethod
    def observer_for_state_dir(
        cls, state_dir: str | os.PathLike[str], registry: ModelRegistry | None = None
    ) -> LedgerObserver:
        """A `LedgerObserver` writing to the store in `state_dir` (whatever team it observes)."""
        return LedgerObserver(registry=registry, store=StateStore(state_dir))

    def record(self, entry: LedgerEntry, attempts: list[dict[str, Any]] = ()) -> bool:  # type: ignore[assignment]
        """Write one call and its attempts; False if this call key was recorded already."""
        with self.engine.begin() as c:
            if entry.call_key is None:
                c.execute(ledger.insert().values(**asdict(entry)))
                add_call(c, entry.run_id, '', entry.input_tokens, entry.output_tokens, entry.cost_usd)
                return True
            new = c.execute(_INSERT_ENTRY, _entry_row(entry)).rowcount > 0
            self._attempts(c, entry.call_key, entry.run_id, entry.agent_path, entry.specialist, attempts)
            if new:  # the run's (and delegation's) row carries its spend from the call on
                add_call(c, entry.run_id, entry.call_key, entry.input_tokens, entry.output_tokens, entry.cost_usd)
        return new

    def record_attempts(
        self, call_key: str, *, run_id: str, agent_path: str, specialist: str, attempts: list[dict[str, Any]]
    ) -> None:
        with self.engine.begin() as c:
            self._attempts(c, call_key, run_id, agent_path, specialist, attempts)

    @staticmethod
    def _attempts(c: sa.Connection, key: str, run_id: str, agent_path: str, specialist: str, attempts: Any) -> None:
        now = time.time()
        rows = [
            dict(
                call_key=key,
                seq=int(a['seq']),
                run_id=run_id,
                agent_path=agent_path,
                specialist=specialist,
                model_id=a['model_id'],
                tier=int(a.get('tier', 0)),
                status=a['status'],
                error=a.get('error'),
                elapsed_ms=float(a.get('elapsed_ms', 0.0)),
                created_at=now,
            )
            for a in attempts
        ]
        if rows:
            _sql.write(c, _INSERT_ATTEMPT, rows)

    # ------------------------------------------------------------------ queries

    @staticmethod
    def _filtered(
        q: Any,
        *,
        run_id: str | None,
        team: str | None,
        project: str | None,
        specialist: str | None,
        model_id: str | None,
        since: float | None,
    ) -> Any:
        for col, val in (
            (ledger.c.run_id, run_id),
            (ledger.c.team, team),
            (ledger.c.project, project),
            (ledger.c.specialist, specialist),
            (ledger.c.model_id, model_id),
        ):
            if val is not None:
                q = q.where(col == val)
        if since is not None:
            q = q.where(ledger.c.created_at >= since)
        return q

    def entries(
        self,
        *,
        run_id: str | None = None,
        team: str | None = None,
        project: str | None = None,
        specialist: str | None = None,
        model_id: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[LedgerEntry]:
        """Ledger rows, oldest first."""
        q = self._filtered(
            sa.select(ledger).order_by(ledger.c.created_at, ledger.c.id),
            run_id=run_id,
            team=team,
            project=project,
            specialist=specialist,
            model_id=model_id,
            since=since,
        )
        if limit is not None:
            q = q.limit(limit)
        fields = LedgerEntry.__dataclass_fields__
        _flush(self.store)
        with self.engine.connect() as c:
            return [LedgerEntry(**{k: v for k, v in r.items() if k in fields}) for r in c.execute(q).mappings()]

    def usage(
        self,
        by: Literal['team', 'project', 'specialist', 'model'] = 'model',
        *,
        since: float | None = None,
        run_id: str | None = None,
        team: str | None = None,
        project: str | None = None,
        specialist: str | None = None,
        model_id: str | None = None,
    ) -> list[UsageRow]:
        """Calls, tokens and cost grouped by one dimension, most expensive first."""
        if by not in _COLUMNS:
            raise UserError(f'cannot group usage by {by!r} (one of {", ".join(USAGE_DIMENSIONS)})')
        col = _COLUMNS[by]
        q = sa.select(
            col,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(ledger.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(ledger.c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(ledger.c.cost_usd), 0.0),
        ).group_by(col)
        q = self._filtered(
            q, run_id=run_id, team=team, project=project, specialist=specialist, model_id=model_id, since=since
        )
        _flush(self.store)
        with self.engine.connect() as c:
            found: list[tuple[Any, ...]] = [tuple(r) for r in c.execute(q)]
        rows = [UsageRow(str(k), int(n), int(i), int(o), float(cost)) for k, n, i, o, cost in found]
        return sorted(rows, key=lambda r: (-r.cost_usd, -(r.input_tokens + r.output_tokens), r.key))

    def total(self, **filters: Any) -> UsageRow:
        rows = self.usage('team', **filters)
        return UsageRow(
            'total',
            sum(r.calls for r in rows),
            sum(r.input_tokens for r in rows),
            sum(r.output_tokens for r in rows),
            sum(r.cost_usd for r in rows),
        )

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        """Every attempt at every model call of a run (failed, refused and answered), in order."""
        q = (
            sa.select(model_attempts)
            .where(model_attempts.c.run_id == run_id)
            .order_by(model_attempts.c.created_at, model_attempts.c.call_key, model_attempts.c.seq)
        )
        _flush(self.store)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]


class _LedgerBuffer(BufferedWriter):
    """Ledger rows of unpriced calls, written with the store's other buffered records."""

    def write_batch(self, conn: sa.Connection, items: list[Any]) -> None:
        # The calls not recorded yet (a recovered run re-runs its hooks) also go onto their run's and
        # delegation's rows, in this transaction (`state._records.add_calls`).
        added = _sql.inserted(conn, _INSERT_ENTRY, [_entry_row(e) for e, _ in items], ledger.c.call_key)
        new: dict[str, LedgerEntry] = {}
        for e, attempts in items:
            Ledger._attempts(conn, e.call_key, e.run_id, e.agent_path, e.specialist, attempts)
            if e.call_key in added:
                new.setdefault(e.call_key, e)  # type: ignore[arg-type]
        add_calls(conn, [(e.run_id, e.call_key, e.input_tokens, e.output_tokens, e.cost_usd) for e in new.values()])


_buffers: dict[str, _LedgerBuffer] = {}  # one per store and process


def _flush(store: StateStore) -> None:
    """This process's queued ledger rows (and the store's other records) first, before reading."""
    if store.url in _buffers:
        flusher.flush_store(store)


class LedgerObserver(RunObserver):
    """Writes each answered model call (and the attempts behind it) to the ledger of the team's store.

    `store=None`: the store of the team being observed (looked up by name in this process). Teams
    built with `record=False` are not written (their routes still get real costs).
    """

    def __init__(self, *, registry: ModelRegistry | None = None, store: StateStore | None = None) -> None:
        self.registry = registry
        self.store = store
        self._ledgers: dict[str, Ledger] = {}

    def _ledger(self, call: ModelCall) -> Ledger | None:
        store = self.store
        if store is None:
            scope = current_scope.get()
            if scope is None or not scope.record:
                return None
            store = scope.store
        led = self._ledgers.get(store.url)
        if led is None:
            led = self._ledgers[store.url] = Ledger(store)
        return led

    async def before_model_call(self, call: ModelCall) -> None:
        # Observers after this one (audit, recordings) see the routed model's registry id ...
        plan = plan_for(call.deps.specialist)
        if plan is not None and (self.registry is None or call.model_id not in self.registry):
            call.model_id = plan.tiers[plan.tier_for(call.messages)][0]

    async def after_model_call(self, call: ModelCall, response: ModelResponse) -> None:
        cost = call_cost(call, response, self.registry)
        # ... and, once it answered, the id and version of the model that actually served it.
        call.model_id = cost.model_id
        call.extra['proctor.model_version'] = cost.version
        led = self._ledger(call)
        if led is None:
            return
        d = call.deps
        entry = LedgerEntry(
            run_id=d.run_id,
            team=d.team,
            project=d.project,
            specialist=d.specialist,
            agent_path=d.agent_path,
            model_id=cost.model_id,
            input_tokens=cost.input_tokens,
            output_tokens=cost.output_tokens,
            cost_usd=cost.cost_usd,
            created_at=time.time(),
            call_key=call.key,
            data_class=d.data_class,
            model_version=cost.version,
        )
        attempts = attempts_of(response)
        if self.registry is None:
            # Unpriced calls (no registry: no prices, no budgets) are queued and written with the
            # run's other records (at the end of its delegations and of the run): no write per call.
            buf = _buffers.get(led.store.url) or _buffers.setdefault(led.store.url, _LedgerBuffer(led.store))
            buf._buf.append((entry, attempts))
            return
        with anyio.CancelScope(shield=True):
            await led.store.call(led.record, entry, attempts)

    async def on_model_error(self, call: ModelCall, error: BaseException) -> None:
        attempts = attempts_of(error)
        led = self._ledger(call) if attempts else None
        if led is None:
            return
        d = call.deps
        with anyio.CancelScope(shield=True):
            await led.store.call(
                lambda: led.record_attempts(
                    call.key, run_id=d.run_id, agent_path=d.agent_path, specialist=d.specialist, attempts=attempts
                ),
            )
