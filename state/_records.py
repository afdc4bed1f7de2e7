"""Reading and writing run and delegation records (the `proctor_runs` / `proctor_delegations` tables)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

from ..exceptions import UnknownRunError
from . import _sql
from ._schema import delegations, ledger, model_attempts, runs
from ._store import StateStore
from ._writer import BufferedWriter, flusher

__all__ = (
    'RunRecord',
    'DelegationRecord',
    'RunRecords',
    'RunStatus',
    'DelegationStatus',
    'lead_delegation',
    'add_call',
    'add_calls',
    'apply_ledger',
    'route_line',
    'RecordsBuffer',
)

#: A run's status: queued for a worker, executing, paused at an approval, or finished one of three ways.
RunStatus = Literal['enqueued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled']
#: A delegation's status (a delegation cannot be queued or cancelled on its own).
DelegationStatus = Literal['running', 'waiting', 'succeeded', 'failed']


def lead_delegation(delegation_id: str, known: Container[str]) -> str | None:
    """The delegation that delegated `delegation_id` (a member of a sub-team: its lead's, whose id
    its own extends, `<lead's id>><member>:<call>`), if it is in `known`; None for the supervisor's."""
    i = delegation_id.rfind('>')
    while i > 0:
        if delegation_id[:i] in known:
            return delegation_id[:i]
        i = delegation_id.rfind('>', 0, i)
    return None


@dataclass
class DelegationRecord:
    delegation_id: str
    run_id: str
    seq: int
    agent_path: str
    specialist: str
    subtask: str
    model_id: str | None
    route_reason: str | None
    status: DelegationStatus
    output: Any
    error: str | None
    started_at: float
    finished_at: float | None
    input_tokens: int
    output_tokens: int
    requests: int
    cost_usd: float
    # Derived from the ledger's attempts when read (`RunRecords.get`): the model the route put first,
    # and why another one served (None: it served on its first choice, or nothing was asked yet).
    preferred_model: str | None = None
    fallback: str | None = None

    @property
    def route(self) -> str:
        """One line: preferred → served model, the fallback's reason, and the route's reason."""
        return route_line(self.preferred_model, self.model_id, self.fallback, self.route_reason)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, 'route': self.route}


def route_line(preferred: str | None, served: str | None, fallback: str | None, reason: str | None) -> str:
    """`sonnet → gpt4o (fell back: sonnet failed: ModelHTTPError 503 …) · plan: …` — which model
    served, the one it fell back from and why, then the router's reason."""
    if preferred and served and preferred != served:
        head = f'{preferred} → {served}'
    else:
        head = served or preferred or '?'
    if fallback:
        head += f' (fell back: {fallback})'
    elif preferred and served == preferred:
        head += ' (first choice)'
    return f'{head} · plan: {reason}' if reason else head


@dataclass
class RunRecord:
    run_id: str
    team: str
    project: str
    data_class: str
    task: str
    status: RunStatus
    factory: str | None
    workspace: str | None
    started_at: float
    finished_at: float | None
    output: Any
    error: str | None
    input_tokens: int
    output_tokens: int
    requests: int
    cost_usd: float
    trace_id: str | None
    durable: bool
    delegations: list[DelegationRecord] = field(default_factory=list)
    # The supervisor's model (from the ledger, when read with delegations): served, preferred, why it fell back.
    model_id: str | None = None
    preferred_model: str | None = None
    fallback: str | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    @property
    def route(self) -> str:
        """The supervisor's model: preferred → served, and why it fell back."""
        return route_line(self.preferred_model, self.model_id, self.fallback, None)

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != 'delegations'}
        d['duration_s'] = self.duration_s
        d['route'] = self.route
        d['delegations'] = [x.to_json() for x in self.delegations]
        return d


def _load(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _dump(value: Any) -> str:
    if hasattr(value, 'model_dump'):
        value = value.model_dump(mode='json')
    return json.dumps(value, default=str)


_INSERT_IGNORE: dict[tuple[str, str], Any] = {}


def _insert_ignore(conn: sa.Connection, table: sa.Table, key: str) -> Any:
    """INSERT ... ON CONFLICT (key) DO NOTHING, for SQLite and Postgres (built once, cached)."""
    stmt = _INSERT_IGNORE.get((conn.dialect.name, table.name))
    if stmt is None:
        if conn.dialect.name == 'postgresql':
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = _INSERT_IGNORE[(conn.dialect.name, table.name)] = insert(table).on_conflict_do_nothing(
            index_elements=[key]
        )
    return stmt


_b = sa.bindparam
_RUN_STATUS = runs.update().where(runs.c.run_id == _b('rid')).values(status=_b('status'))
_RUN_STATUS_ERR = (
    runs.update().where(runs.c.run_id == _b('rid')).values(status=_b('status'), error=_b('err'), finished_at=_b('fin'))
)
_RUN_STATUS_FIN = runs.update().where(runs.c.run_id == _b('rid')).values(status=_b('status'), finished_at=_b('fin'))
_RUN_FINISH = (
    runs.update()
    .where(runs.c.run_id == _b('rid'))
    .values(
        status='succeeded',
        output=_b('out'),
        finished_at=_b('fin'),
        error=None,
        input_tokens=_b('tin'),
        output_tokens=_b('tout'),
        requests=_b('req'),
        cost_usd=_b('cost'),
    )
)


def _delegation_sum(col: Any, zero: Any) -> Any:
    return (
        sa.select(sa.func.coalesce(sa.func.sum(col), zero))
        .where(delegations.c.run_id == runs.c.run_id)
        .scalar_subquery()
    )


# The run's own usage plus its delegations' (one statement: no read of the totals first).
_RUN_FINISH_WITH_DELEGATIONS = (
    runs.update()
    .where(runs.c.run_id == _b('rid'))
    .values(
        status='succeeded',
        output=_b('out'),
        finished_at=_b('fin'),
        error=None,
        input_tokens=_b('tin') + _delegation_sum(delegations.c.input_tokens, 0),
        output_tokens=_b('tout') + _delegation_sum(delegations.c.output_tokens, 0),
        requests=_b('req') + _delegation_sum(delegations.c.requests, 0),
        cost_usd=_b('cost') + _delegation_sum(delegations.c.cost_usd, 0.0),
    )
)
# One account per run: the ledger holds every answered model call (a failed run's and a waiting
# run's too), and a run's and each delegation's tokens, requests and cost are its ledger rows' sums.
# The ledger's writers add each new row's call to its run's and delegation's rows in the transaction
# that writes the row (`add_call`), so the rows carry what was spent so far at any moment; a team whose
# calls reach its ledger (`RunRecords.usage_from_ledger`) leaves the figures alone as its agent runs
# finish. Reads sum the ledger again (`apply_ledger`, `RunRecords.get`), for rows written otherwise.
_L = ledger.c


def _bump(table: sa.Table) -> Any:
    c = table.c
    return {
        'input_tokens': c.input_tokens + _b('tin'),
        'output_tokens': c.output_tokens + _b('tout'),
        'requests': c.requests + 1,
        'cost_usd': c.cost_usd + _b('cost'),
    }


_OF_DELEGATION = sa.and_(_L.run_id == _b('rid'), sa.func.substr(_L.call_key, 1, _b('n')) == _b('prefix'))


def _ledger_total(col: Any, zero: Any) -> Any:
    return sa.select(sa.func.coalesce(sa.func.sum(col), zero)).where(_OF_DELEGATION).scalar_subquery()


_SETTLE_DELEGATION = (
    delegations.update()
    .where(delegations.c.delegation_id == _b('did'))
    .values(
        input_tokens=_ledger_total(_L.input_tokens, 0),
        output_tokens=_ledger_total(_L.output_tokens, 0),
        requests=sa.select(sa.func.count()).where(_OF_DELEGATION).scalar_subquery(),
        cost_usd=_ledger_total(_L.cost_usd, 0.0),
    )
)
_BUMP_RUN = runs.update().where(runs.c.run_id == _b('rid')).values(**_bump(runs))
_BUMP_DELEGATION = delegations.update().where(delegations.c.delegation_id == _b('did')).values(**_bump(delegations))


def add_call(
    conn: sa.Connection, run_id: str, call_key: str, input_tokens: int, output_tokens: int, cost: float
) -> None:
    """Add one new ledger row's call to its run's and delegation's rows, in `conn`'s transaction
    (two indexed updates). Call it only for a row the transaction inserted (the ledger is idempotent)."""
    add_calls(conn, [(run_id, call_key, input_tokens, output_tokens, cost)])


def add_calls(conn: sa.Connection, calls: Any) -> None:
    """`add_call` for many new rows: (run id, call key, tokens in, tokens out, cost) each."""
    params = [
        {'rid': rid, 'did': (key or rid).rpartition('#')[0] or rid, 'tin': tin, 'tout': tout, 'cost': cost}
        for rid, key, tin, tout, cost in calls
    ]
    if params:
        _sql.write(conn, _BUMP_RUN, params)
        mine = [p for p in params if p['did'] != p['rid']]  # a delegation's call (the supervisor's has no row)
        if mine:
            _sql.write(conn, _BUMP_DELEGATION, mine)


def apply_ledger(conn: sa.Connection, recs: Any) -> None:
    """Read-side of the one account: each run's tokens, requests and cost as its ledger rows sum
    (one grouped query), for rows the ledger's writers did not settle (a row written by other code,
    a store from before `add_call`). A run with no ledger row keeps its own figures."""
    by_id = {r.run_id: r for r in recs}
    if not by_id:
        return
    q = (
        sa.select(
            _L.run_id,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(_L.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(_L.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(_L.cost_usd), 0.0),
        )
        .where(_L.run_id.in_(list(by_id)))
        .group_by(_L.run_id)
    )
    for rid, n, tin, tout, cost in conn.execute(q):
        r = by_id[rid]
        r.requests, r.input_tokens, r.output_tokens, r.cost_usd = int(n), int(tin), int(tout), float(cost)


def _fallbacks(attempts: list[Any]) -> tuple[str | None, str | None, str | None]:
    """(first choice, served model, why it fell back) of one agent run's calls, from their attempts."""
    calls: dict[str, list[Any]] = {}
    for a in attempts:
        calls.setdefault(a['call_key'], []).append(a)
    preferred = served = why = None
    n_fallbacks = 0
    for tries in calls.values():
        tries.sort(key=lambda a: a['seq'])
        first = next((a for a in tries if a['tier'] == 0), tries[0])
        preferred = preferred or first['model_id']
        ok = next((a for a in tries if a['status'] == 'ok'), None)
        served = ok['model_id'] if ok is not None else served
        failed = [a for a in tries if a['status'] != 'ok']
        if failed:
            n_fallbacks += 1
            if why is None:
                causes = '; '.join(
                    f'{a["model_id"]} {a["status"]}'
                    + (f': {" ".join(str(a["error"]).split())[:160]}' if a['error'] else '')
                    for a in failed
                )
                why = causes + (f', so {ok["model_id"]} served' if ok is not None else ', and no model answered')
    if why is not None and n_fallbacks > 1:
        why += f' ({n_fallbacks} of {len(calls)} calls fell back)'
    return preferred, served, why


_RUN_TRACE = runs.update().where(runs.c.run_id == _b('rid'), runs.c.trace_id.is_(None)).values(trace_id=_b('tid'))
_DELEGATION_FINISH = (
    delegations.update()
    .where(delegations.c.delegation_id == _b('did'))
    .values(
        status=_b('status'),
        output=_b('out'),
        error=_b('err'),
        finished_at=_b('fin'),
        input_tokens=_b('tin'),
        output_tokens=_b('tout'),
        requests=_b('req'),
        cost_usd=_b('cost'),
        model_id=sa.func.coalesce(
            _b('mid', type_=delegations.c.model_id.type), delegations.c.model_id
        ),  # the serving model, when known
    )
)
# The same, for a team whose calls reach its ledger: the ledger's writers keep the usage (`add_call`).
_RUN_DONE = (
    runs.update()
    .where(runs.c.run_id == _b('rid'))
    .values(status='succeeded', output=_b('out'), finished_at=_b('fin'), error=None)
)
_DELEGATION_DONE = (
    delegations.update()
    .where(delegations.c.delegation_id == _b('did'))
    .values(
        status=_b('status'),
        output=_b('out'),
        error=_b('err'),
        finished_at=_b('fin'),
        model_id=sa.func.coalesce(_b('mid', type_=delegations.c.model_id.type), delegations.c.model_id),
    )
)
_GET_RUN = sa.select(runs).where(runs.c.run_id == _b('rid'))
_GET_DELEGATIONS = sa.select(delegations).where(delegations.c.run_id == _b('rid')).order_by(delegations.c.seq)
_GET_ATTEMPTS = sa.select(
    model_attempts.c.call_key,
    model_attempts.c.seq,
    model_attempts.c.model_id,
    model_attempts.c.tier,
    model_attempts.c.status,
    model_attempts.c.error,
).where(model_attempts.c.run_id == _b('rid'))
_GET_CALLS = (
    sa.select(_L.call_key, _L.model_id, _L.input_tokens, _L.output_tokens, _L.cost_usd)
    .where(_L.run_id == _b('rid'))
    .order_by(_L.created_at, _L.id)
)
_DELEGATION_SEQ = sa.select(sa.func.count()).select_from(delegations).where(delegations.c.run_id == _b('rid'))


def _finish_run_in(
    c: sa.Connection,
    run_id: str,
    at: float,
    *,
    output: Any,
    input_tokens: int,
    output_tokens: int,
    requests: int,
    cost_usd: float,
    add_delegations: bool = False,
    from_ledger: bool = False,
) -> None:
    params = {
        'rid': run_id,
        'out': _dump(output),
        'fin': at,
        'tin': input_tokens,
        'tout': output_tokens,
        'req': requests,
        'cost': cost_usd,
    }
    if from_ledger:  # the ledger's writers keep the run's usage (`add_call`)
        _sql.write(c, _RUN_DONE, params)
        return
    _sql.write(c, _RUN_FINISH_WITH_DELEGATIONS if add_delegations else _RUN_FINISH, params)


def _start_delegation_in(
    c: sa.Connection,
    at: float,
    *,
    delegation_id: str,
    run_id: str,
    agent_path: str,
    specialist: str,
    subtask: str,
    model_id: str | None,
    route_reason: str | None,
) -> None:
    seq = int(_sql.scalar(c, _DELEGATION_SEQ, {'rid': run_id}))
    values = _delegation_row(
        at,
        seq,
        delegation_id=delegation_id,
        run_id=run_id,
        agent_path=agent_path,
        specialist=specialist,
        subtask=subtask,
        model_id=model_id,
        route_reason=route_reason,
    )
    if _sql.write(c, _insert_ignore(c, delegations, 'delegation_id'), values):
        # Its calls the ledger wrote before this row (the row was queued): their usage, summed once.
        _sql.write(c, _SETTLE_DELEGATION, _settle_params(values))


def _delegation_row(at: float, seq: int, **kw: Any) -> dict[str, Any]:
    """A delegation's row as it starts: running, no usage yet."""
    return dict(kw, seq=seq, status='running', started_at=at, input_tokens=0, output_tokens=0, requests=0, cost_usd=0.0)


def _settle_params(row: dict[str, Any]) -> dict[str, Any]:
    """`_SETTLE_DELEGATION`'s parameters for a new row: the ledger's calls under its id."""
    prefix = row['delegation_id'] + '#'
    return {'did': row['delegation_id'], 'rid': row['run_id'], 'prefix': prefix, 'n': len(prefix)}


def _start_delegations_in(c: sa.Connection, starts: list[tuple[float, dict[str, Any]]]) -> None:
    """`_start_delegation_in` for many rows in a few statements: which are recorded already (a resumed
    run re-entering a delegation changes nothing), each run's next `seq`, then the new rows and
    their usage from the ledger, each as one executemany."""
    if len(starts) == 1:
        at, kw = starts[0]
        _start_delegation_in(c, at, **kw)
        return
    ids = list(dict.fromkeys(kw['delegation_id'] for _, kw in starts))
    known = _sql.present(c, delegations.c.delegation_id, ids)
    seqs: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for at, kw in starts:
        did, rid = kw['delegation_id'], kw['run_id']
        if did in known:
            continue
        known.add(did)
        if rid not in seqs:
            seqs[rid] = int(_sql.scalar(c, _DELEGATION_SEQ, {'rid': rid}))
        rows.append(_delegation_row(at, seqs[rid], **kw))
        seqs[rid] += 1
    if not rows:
        return
    _sql.write(c, _insert_ignore(c, delegations, 'delegation_id'), rows)
    _sql.write(c, _SETTLE_DELEGATION, [_settle_params(r) for r in rows])


def _finish_delegation_in(
    c: sa.Connection,
    delegation_id: str,
    at: float,
    *,
    status: str,
    output: Any = None,
    error: str | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    requests: int = 0,
    cost_usd: float = 0.0,
    model_id: str | None = None,
    from_ledger: bool = False,
) -> None:
    params = {
        'did': delegation_id,
        'status': status,
        'out': None if output is None else _dump(output),
        'err': error,
        'fin': at,
        'tin': input_tokens,
        'tout': output_tokens,
        'req': requests,
        'cost': cost_usd,
        'mid': model_id,
    }
    _sql.write(c, _DELEGATION_DONE if from_ledger else _DELEGATION_FINISH, params)


class RecordsBuffer(BufferedWriter):
    """Run and delegation row writes queued by a run (`RunRecords.queue_*`), written in order with
    the store's other buffered rows (recordings, audit, ledger, spans) in one transaction."""

    def add(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        self._buf.append((fn, args, kwargs))

    def write_batch(self, conn: sa.Connection, items: list[Any]) -> None:
        # Consecutive delegation starts (the K delegations of one response) go in as one batch.
        starts: list[tuple[float, dict[str, Any]]] = []
        for fn, args, kwargs in items:
            if fn is _start_delegation_in:
                starts.append((args[0], kwargs))
                continue
            if starts:
                _start_delegations_in(conn, starts)
                starts = []
            fn(conn, *args, **kwargs)
        if starts:
            _start_delegations_in(conn, starts)


_buffers: dict[str, RecordsBuffer] = {}  # store url -> its buffer (one per store in a process)


class RunRecords:
    """Run and delegation rows in one state store (sync; call through a thread from async code)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        #: The team's model calls reach this store's ledger, whose writers keep each run's and
        #: delegation's usage (`add_call`): finishing a run or delegation records no usage of its own.
        self.usage_from_ledger = False

    def create_run(
        self,
        *,
        run_id: str,
        team: str,
        project: str,
        data_class: str,
        task: str,
        factory: str | None,
        workspace: str | None,
        durable: bool,
        status: RunStatus = 'running',
    ) -> None:
        """Insert the run's row (a no-op apart from the status if the run id is already recorded)."""
        values = dict(
            run_id=run_id,
            team=team,
            project=project,
            data_class=data_class,
            task=task,
            status=status,
            factory=factory,
            workspace=workspace,
            started_at=time.time(),
            input_tokens=0,
            output_tokens=0,
            requests=0,
            cost_usd=0.0,
            durable=durable,
        )
        with self.store.engine.begin() as c:
            if _sql.write(c, _insert_ignore(c, runs, 'run_id'), values) == 0:
                _sql.write(c, _RUN_STATUS, {'rid': run_id, 'status': status})

    def set_status(self, run_id: str, status: RunStatus, *, error: str | None = None) -> None:
        final = status in ('succeeded', 'failed', 'cancelled')
        self.flush()
        with self.store.engine.begin() as c:
            if error is not None:
                c.execute(
                    _RUN_STATUS_ERR,
                    {'rid': run_id, 'status': status, 'err': error, 'fin': time.time() if final else None},
                )
            elif final:
                c.execute(_RUN_STATUS_FIN, {'rid': run_id, 'status': status, 'fin': time.time()})
            else:
                c.execute(_RUN_STATUS, {'rid': run_id, 'status': status})

    def finish_run(
        self,
        run_id: str,
        *,
        output: Any,
        input_tokens: int,
        output_tokens: int,
        requests: int,
        cost_usd: float,
        add_delegations: bool = False,
    ) -> None:
        """Mark the run succeeded with its output and usage; `add_delegations`: the usage given is the
        supervisor's own, and the delegations' recorded usage is added to it."""
        self._write_now(
            _finish_run_in,
            run_id,
            time.time(),
            output=output,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            requests=requests,
            cost_usd=cost_usd,
            add_delegations=add_delegations,
            from_ledger=self.usage_from_ledger,
        )

    def queue_finish_run(self, run_id: str, **kw: Any) -> None:
        """`finish_run`, written with the run's other rows in the store's next flush (`settle` at
        the run's end): no transaction or thread hop of its own."""
        self._buffer().add(_finish_run_in, run_id, time.time(), from_ledger=self.usage_from_ledger, **kw)

    def queue_start_delegation(self, **kw: Any) -> None:
        """`start_delegation`, written in the store's next flush (the background writer's, within a
        second, or the run's next checkpoint or end), with the run's other rows: no transaction or
        thread hop of its own. (Waking the writer at once instead cost ~3 ms CPU per K=1 run: the
        writer thread and the event loop trading the GIL.)"""
        self._buffer().add(_start_delegation_in, time.time(), **kw)

    def queue_finish_delegation(self, delegation_id: str, **kw: Any) -> None:
        """`finish_delegation`, written like `queue_start_delegation`, after its start."""
        self._buffer().add(_finish_delegation_in, delegation_id, time.time(), from_ledger=self.usage_from_ledger, **kw)

    def _write_now(self, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """`write(conn, *args, **kwargs)` in a transaction of its own, after this process's queued rows
        (the direct twin of `_buffer().add(write, *args, **kwargs)`)."""
        self.flush()
        with self.store.engine.begin() as c:
            write(c, *args, **kwargs)

    def _buffer(self) -> RecordsBuffer:
        buf = _buffers.get(self.store.url)
        if buf is None:
            buf = _buffers.setdefault(self.store.url, RecordsBuffer(self.store))
        return buf

    def flush(self) -> None:
        """Rows this process queued for the store (`queue_*`), written before a direct read or write."""
        if self.store.url in _buffers:
            flusher.flush_store(self.store)

    def set_trace_id(self, run_id: str, trace_id: str) -> None:
        with self.store.engine.begin() as c:
            c.execute(_RUN_TRACE, {'rid': run_id, 'tid': trace_id})

    def start_delegation(
        self,
        *,
        delegation_id: str,
        run_id: str,
        agent_path: str,
        specialist: str,
        subtask: str,
        model_id: str | None,
        route_reason: str | None,
    ) -> None:
        """Record a delegation as running (a resumed run re-entering it changes nothing)."""
        self._write_now(
            _start_delegation_in,
            time.time(),
            delegation_id=delegation_id,
            run_id=run_id,
            agent_path=agent_path,
            specialist=specialist,
            subtask=subtask,
            model_id=model_id,
            route_reason=route_reason,
        )

    def totals(self, run_id: str) -> tuple[int, int, int, float]:
        """Tokens in, tokens out, requests and cost of a run's delegations."""
        d = delegations.c
        q = sa.select(
            sa.func.coalesce(sa.func.sum(d.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(d.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(d.requests), 0),
            sa.func.coalesce(sa.func.sum(d.cost_usd), 0.0),
        ).where(d.run_id == run_id)
        self.flush()
        with self.store.engine.connect() as c:
            a, b, n, cost = c.execute(q).one()
        return int(a), int(b), int(n), float(cost)

    def finish_delegation(
        self,
        delegation_id: str,
        *,
        status: str,
        output: Any = None,
        error: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        requests: int = 0,
        cost_usd: float = 0.0,
        model_id: str | None = None,
    ) -> None:
        self._write_now(
            _finish_delegation_in,
            delegation_id,
            time.time(),
            status=status,
            output=output,
            error=error,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            requests=requests,
            cost_usd=cost_usd,
            model_id=model_id,
            from_ledger=self.usage_from_ledger,
        )

    def get(self, run_id: str, *, with_delegations: bool = True) -> RunRecord:
        self.flush()
        with self.store.engine.connect() as c:
            found = _sql.mappings(c, _GET_RUN, {'rid': run_id})
            row: Any = found[0] if found else None
            if row is None:
                # accept a unique prefix, as git does for commits
                rows = c.execute(sa.select(runs).where(runs.c.run_id.like(f'{run_id}%')).limit(2)).mappings().all()
                if len(rows) != 1:
                    raise UnknownRunError(run_id)
                row = rows[0]
            rec = self._run(row)
            if not with_delegations:
                apply_ledger(c, [rec])
            else:
                drows = _sql.mappings(c, _GET_DELEGATIONS, {'rid': rec.run_id})
                rec.delegations = [self._delegation(d) for d in drows]
                self._routes(c, rec)
            return rec

    @staticmethod
    def _routes(c: sa.Connection, rec: RunRecord) -> None:
        """Each agent's first-choice model, serving model and fallback reason, from the ledger's attempts."""
        rows = _sql.mappings(c, _GET_ATTEMPTS, {'rid': rec.run_id})
        by_scope: dict[str, list[Any]] = {}
        for a in rows:
            by_scope.setdefault(str(a['call_key']).rpartition('#')[0], []).append(a)
        calls = [tuple(r.values()) for r in _sql.mappings(c, _GET_CALLS, {'rid': rec.run_id})]
        served_by_scope: dict[str, str] = {}
        spent: dict[str, list[Any]] = {}  # scope -> [requests, tokens in, tokens out, cost]
        for key, mid, tin, tout, cost in calls:
            scope = str(key).rpartition('#')[0] if key else rec.run_id
            served_by_scope[scope] = mid
            acc = spent.setdefault(scope, [0, 0, 0, 0.0])
            acc[0], acc[1], acc[2], acc[3] = acc[0] + 1, acc[1] + tin, acc[2] + tout, acc[3] + cost
        if calls:
            rec.requests = sum(a[0] for a in spent.values())
            rec.input_tokens = sum(a[1] for a in spent.values())
            rec.output_tokens = sum(a[2] for a in spent.values())
            rec.cost_usd = float(sum(a[3] for a in spent.values()))
        for d in rec.delegations:
            if d.delegation_id in spent:
                d.requests, d.input_tokens, d.output_tokens, d.cost_usd = spent[d.delegation_id]
        preferred, served, why = _fallbacks(by_scope.get(rec.run_id, []))
        rec.model_id = served_by_scope.get(rec.run_id) or served
        rec.preferred_model, rec.fallback = preferred or rec.model_id, why
        for d in rec.delegations:
            preferred, served, why = _fallbacks(by_scope.get(d.delegation_id, []))
            if served and d.status not in ('succeeded',):
                d.model_id = served_by_scope.get(d.delegation_id) or served
            d.preferred_model, d.fallback = preferred or d.model_id, why

    def list(self, *, limit: int = 50, status: str | None = None, team: str | None = None) -> list[RunRecord]:
        self.flush()
        q = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        if status:
            q = q.where(runs.c.status == status)
        if team:
            q = q.where(runs.c.team == team)
        with self.store.engine.connect() as c:
            recs = [self._run(r) for r in c.execute(q).mappings()]
            apply_ledger(c, recs)
            return recs

    @staticmethod
    def _run(row: Any) -> RunRecord:
        d = dict(row)
        d['output'] = _load(d['output'])
        return RunRecord(**d)

    @staticmethod
    def _delegation(row: Any) -> DelegationRecord:
        d = dict(row)
        d['output'] = _load(d['output'])
        return DelegationRecord(**d)
