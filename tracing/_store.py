"""The local trace store: finished spans as rows of `proctor_spans` in the state database.

`StoreSpanProcessor` buffers ended spans in memory (`on_end` only appends, so the run does not wait
on the database) and writes them in one transaction per flush, from one background thread shared by
every buffer of the process: woken at the end of every team run, else each second, and at exit.
Readers in the process (`TraceStore`, replay, the audit) flush first. `TraceStore` reads spans back,
as plain `StoredSpan`s or rebuilt as OpenTelemetry `ReadableSpan`s for re-export.

Spans are routed by trace: a team registers each run's trace id with its store
(`register_trace`), so one tracer provider shared by teams on different stores writes each run's
spans to its own store only.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .._log import get_logger
from ..state import _sql
from ..state._schema import runs, spans
from ..state._store import StateStore
from ..state._writer import BufferedWriter, flusher

__all__ = (
    'ROOT_SPAN_NAME',
    'StoreSpanProcessor',
    'StoredSpan',
    'TraceStore',
    'register_trace',
    'span_row',
    'spans_by_parent',
    'write_span_rows',
)

log = get_logger('proctor.tracing')

ROOT_SPAN_NAME = 'team.run'
_MAX_TRACES = 10_000
_registry: OrderedDict[int, tuple[str, str]] = OrderedDict()  # trace id -> (store url, run id)
_registry_lock = threading.Lock()


def register_trace(trace_id: int, store: StateStore, run_id: str) -> None:
    """Spans of trace `trace_id` belong to run `run_id`, stored in `store`."""
    with _registry_lock:
        _registry[trace_id] = (store.url, run_id)
        _registry.move_to_end(trace_id)
        while len(_registry) > _MAX_TRACES:
            _registry.popitem(last=False)


def _hex(value: int, width: int) -> str:
    return format(value, f'0{width}x')


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(',', ':'))


_MAX_RESOURCES = 64
#: id(resource) -> (the resource, its JSON): one provider has one resource, encoded once, not once per span.
#: Bounded (a process with more providers than this re-encodes); the entry keeps its resource alive so an
#: id is never reused for another resource while it is cached.
_resource_json: OrderedDict[int, tuple[Resource, str]] = OrderedDict()
_resource_lock = threading.Lock()


def _resource(resource: Resource) -> str:
    key = id(resource)
    with _resource_lock:
        hit = _resource_json.get(key)
        if hit is not None and hit[0] is resource:
            _resource_json.move_to_end(key)
            return hit[1]
    encoded = _dumps(dict(resource.attributes))
    with _resource_lock:
        _resource_json[key] = (resource, encoded)
        while len(_resource_json) > _MAX_RESOURCES:
            _resource_json.popitem(last=False)
    return encoded


def span_row(span: ReadableSpan, run_id: str | None) -> dict[str, Any]:
    """The `proctor_spans` row of a span (ended or not: `end_ns` is None while it runs)."""
    ctx = span.context
    if ctx is None:  # pragma: no cover - an SDK span always has its context
        raise ValueError(f'span {span.name!r} has no context')
    attrs = dict(span.attributes or {})
    status = span.status
    if status.description:
        attrs['otel.status_description'] = status.description
    events = span.events
    links = span.links
    return {
        'span_id': format(ctx.span_id, '016x'),
        'trace_id': format(ctx.trace_id, '032x'),
        'parent_id': format(span.parent.span_id, '016x') if span.parent is not None else None,
        'run_id': run_id or attrs.get('proctor.run_id'),
        'name': span.name[:400],
        'kind': span.kind.name,
        'start_ns': span.start_time or 0,
        'end_ns': span.end_time,
        'status': status.status_code.name,
        'attributes': _dumps(attrs),
        'events': _dumps(
            [{'name': e.name, 'time_ns': e.timestamp, 'attributes': dict(e.attributes or {})} for e in events]
        )
        if events
        else '[]',
        'links': _dumps(
            [
                {
                    'trace_id': _hex(lk.context.trace_id, 32),
                    'span_id': _hex(lk.context.span_id, 16),
                    'attributes': dict(lk.attributes or {}),
                }
                for lk in links
            ]
        )
        if links
        else '[]',
        'resource': _resource(span.resource),
        'scope': span.instrumentation_scope.name if span.instrumentation_scope else None,
    }


_COLUMNS = (
    'span_id',
    'trace_id',
    'parent_id',
    'run_id',
    'name',
    'kind',
    'start_ns',
    'end_ns',
    'status',
    'attributes',
    'events',
    'links',
    'resource',
    'scope',
)


def _upsert_sql(eng: sa.Engine, *, update: bool) -> str:
    # Plain DB-API executemany: a trace write is many small rows, and Core's per-row work is most of its cost.
    mark = '?' if eng.dialect.paramstyle == 'qmark' else '%s'
    sql = f'INSERT INTO proctor_spans ({", ".join(_COLUMNS)}) VALUES ({", ".join([mark] * len(_COLUMNS))}) ON CONFLICT (span_id) DO '
    if not update:
        return sql + 'NOTHING'
    return sql + 'UPDATE SET ' + ', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])


def write_span_rows(
    store: StateStore, rows: Sequence[dict[str, Any]], *, opened: Sequence[dict[str, Any]] = ()
) -> None:
    """Upsert ended spans' rows (replacing placeholders); `opened` placeholder rows never overwrite."""
    if not rows and not opened:
        return
    eng = store.engine
    with eng.begin() as c:
        _write_span_rows_in(c, rows, opened)


_SET_TRACE_ID = (
    runs.update()
    .where(runs.c.run_id == sa.bindparam('r'), runs.c.trace_id.is_(None))
    .values(trace_id=sa.bindparam('t'))
)


def _write_span_rows_in(c: sa.Connection, rows: Sequence[dict[str, Any]], opened: Sequence[dict[str, Any]]) -> None:
    if opened:
        _sql.driver_sql(c, _upsert_sql(c.engine, update=False), [tuple(r[k] for k in _COLUMNS) for r in opened])
        roots = [{'t': r['trace_id'], 'r': r['run_id']} for r in opened if r['name'] == ROOT_SPAN_NAME and r['run_id']]
        if roots:  # the run's trace id, with its root span: the run itself never waits for this write
            _sql.write(c, _SET_TRACE_ID, roots)
    if rows:
        _sql.driver_sql(c, _upsert_sql(c.engine, update=True), [tuple(r[k] for k in _COLUMNS) for r in rows])


class StoreSpanProcessor(BufferedWriter, SpanProcessor):
    """Writes the spans of `store`'s runs to it. `owned`: the provider serves only this store, so
    spans of unregistered traces are kept too (with no run id)."""

    must_write = False

    def __init__(self, store: StateStore, *, owned: bool) -> None:
        self.owned = owned
        self._open: deque[dict[str, Any]] = deque()  # placeholder rows of spans still running
        self._running: dict[int, tuple[Any, str]] = {}  # span id -> (open span of one of our runs, its run id)
        self._stored_open: set[int] = set()  # open spans that have a placeholder row (queued or written)
        self._closed = False
        super().__init__(store)

    @property
    def pending(self) -> int:
        unstored = sum(1 for sid in list(self._running) if sid not in self._stored_open)
        return len(self._buf) + len(self._open) + unstored

    def open_root(self, run_id: str, name: str) -> tuple[str, str] | None:
        """(trace id, span id) of run `run_id`'s span `name` if it is still waiting to be written."""
        for row in list(self._open):
            if row['run_id'] == run_id and row['name'] == name:
                return row['trace_id'], row['span_id']
        return None

    def start(self, span: ReadableSpan, run_id: str) -> None:
        """Store `span` while it is still open (its full row replaces this one when it ends)."""
        self._open.append(span_row(span, run_id))

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        # Spans still open at a flush are stored open too (as the root is), once: a run waiting for an
        # operator, or still running, shows its agents, delegations and tool calls as running, with
        # their finished model and tool spans under them. Most spans end before any flush: no extra row.
        reg = _registry.get(span.get_span_context().trace_id)
        if reg is not None and reg[0] == self.store.url:
            self._running[span.get_span_context().span_id] = (span, reg[1])

    def _store_running(self) -> None:
        """Placeholder rows for the spans open now that have none yet (called as a flush takes the buffers)."""
        # A copy first: the loop adds and removes spans while this runs in the background writer's
        # thread, and iterating the live dict fails if it changes meanwhile (`dict.copy` does not
        # run Python code, so no other thread runs during it; iterating `items()` allocates tuples,
        # and a collection that runs a weakref callback there lets the loop in).
        running = list(self._running.copy().items())
        self._stored_open.intersection_update({sid for sid, _ in running})  # spans that ended meanwhile
        for sid, (span, run_id) in running:
            if sid in self._stored_open:
                continue
            try:
                row = span_row(span, run_id)
            except RuntimeError:  # its attributes changed while being read (another thread): next flush
                continue
            if row['end_ns'] is None:
                self._open.append(row)
                self._stored_open.add(sid)

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is not None and self._running.pop(ctx.span_id, None) is not None:
            self._stored_open.discard(ctx.span_id)
        reg = _registry.get(ctx.trace_id) if ctx is not None else None
        if reg is None:
            if not self.owned:
                return
            run_id = None
        elif reg[0] != self.store.url:
            return
        else:
            run_id = reg[1]
        self._buf.append((span, run_id))
        if len(self._buf) >= 512:
            flusher.wake()

    def take(self, *, checkpoint: bool = False) -> list[Any]:
        if not checkpoint:
            # A mid-run checkpoint's write (a group commit on the run's critical path) leaves the
            # placeholders of running spans to the next write: within a second (the background
            # writer), at the latest as the run ends or waits for an operator. Most spans end before.
            self._store_running()
        # One item: the placeholders of spans still open, and the spans that ended.
        opened = [self._open.popleft() for _ in range(len(self._open))]
        ended = super().take()
        return [(opened, ended)] if opened or ended else []

    def restore(self, items: list[Any]) -> None:
        pass  # a trace write must never fail a run, nor pile up: the spans are dropped (and logged)

    def write_batch(self, conn: sa.Connection, items: list[Any]) -> None:
        for opened, ended in items:
            _write_span_rows_in(conn, [span_row(s, r) for s, r in ended], opened)

    def shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self.force_flush()


@dataclass
class StoredSpan:
    """One row of the trace store, decoded."""

    span_id: str
    trace_id: str
    parent_id: str | None
    run_id: str | None
    name: str
    kind: str | None
    start_ns: int
    end_ns: int | None
    status: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None

    @property
    def duration_ms(self) -> float | None:
        return None if self.end_ns is None else (self.end_ns - self.start_ns) / 1e6

    def to_readable(self) -> ReadableSpan:
        """The span as the OpenTelemetry SDK hands it to exporters (for re-export)."""

        def ctx(trace_id: str, span_id: str) -> SpanContext:
            return SpanContext(
                int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
            )

        attrs = {k: tuple(v) if isinstance(v, list) else v for k, v in self.attributes.items()}
        description = attrs.pop('otel.status_description', None)
        code = StatusCode[self.status] if self.status and self.status in StatusCode.__members__ else StatusCode.UNSET
        return ReadableSpan(
            name=self.name,
            context=ctx(self.trace_id, self.span_id),
            parent=ctx(self.trace_id, self.parent_id) if self.parent_id else None,
            resource=Resource(self.resource),
            attributes=attrs,
            events=[Event(e['name'], e.get('attributes') or {}, e.get('time_ns')) for e in self.events],
            links=[Link(ctx(lk['trace_id'], lk['span_id']), lk.get('attributes') or {}) for lk in self.links],
            kind=SpanKind[self.kind] if self.kind and self.kind in SpanKind.__members__ else SpanKind.INTERNAL,
            status=Status(code, str(description) if code is StatusCode.ERROR and description is not None else None),
            start_time=self.start_ns,
            end_time=self.end_ns if self.end_ns is not None else self.start_ns,
            instrumentation_scope=InstrumentationScope(self.scope or 'proctor'),
        )


def _decode(row: Any) -> StoredSpan:
    d = dict(row)
    for k, empty in (('attributes', {}), ('events', []), ('links', []), ('resource', {})):
        d[k] = json.loads(d[k]) if d.get(k) else empty
    fields: dict[str, Any] = {k: d.get(k) for k in StoredSpan.__dataclass_fields__}
    return StoredSpan(**fields)


class TraceStore:
    """Reading stored traces (sync: call through a thread from async code)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def spans_of_run(self, run_id: str, trace_id: str | None = None) -> list[StoredSpan]:
        """Every stored span of run `run_id` (exact id): those tagged with it plus the rest of its trace."""
        flusher.flush_store(self.store)
        cond = spans.c.run_id == run_id
        if trace_id:
            cond = sa.or_(cond, spans.c.trace_id == trace_id)
        eng = self.store.engine
        with eng.connect() as c:
            rows = c.execute(sa.select(spans).where(cond).order_by(spans.c.start_ns, spans.c.span_id)).mappings().all()
        return [_decode(r) for r in rows]

    def list_traces(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """Stored traces, newest first: trace id, run, team, status, span count, start, duration, errors."""
        flusher.flush_store(self.store)
        eng = self.store.engine
        q = (
            sa.select(
                spans.c.trace_id,
                sa.func.max(spans.c.run_id).label('run_id'),
                sa.func.count().label('spans'),
                sa.func.min(spans.c.start_ns).label('start_ns'),
                sa.func.max(spans.c.end_ns).label('end_ns'),
                sa.func.sum(sa.case((spans.c.status == 'ERROR', 1), else_=0)).label('errors'),
            )
            .group_by(spans.c.trace_id)
            .order_by(sa.func.min(spans.c.start_ns).desc())
            .limit(limit)
        )
        with eng.connect() as c:
            rows = [dict(r) for r in c.execute(q).mappings()]
            ids = [r['run_id'] for r in rows if r['run_id']]
            info = {
                r['run_id']: r
                for r in c.execute(
                    sa.select(runs.c.run_id, runs.c.team, runs.c.project, runs.c.status, runs.c.task).where(
                        runs.c.run_id.in_(ids)
                    )
                ).mappings()
            }
        for r in rows:
            meta = info.get(r['run_id'])
            r['team'] = meta['team'] if meta else None
            r['run_status'] = meta['status'] if meta else None
            r['task'] = meta['task'] if meta else None
            r['duration_ms'] = None if r['end_ns'] is None else (r['end_ns'] - r['start_ns']) / 1e6
        return rows

    def readable_spans(self, run_id: str, trace_id: str | None = None) -> list[ReadableSpan]:
        return [s.to_readable() for s in self.spans_of_run(run_id, trace_id)]


def spans_by_parent(stored: Iterable[StoredSpan]) -> dict[str | None, list[StoredSpan]]:
    """Children per parent span id; spans whose parent is not stored hang under `None`."""
    items = list(stored)
    ids = {s.span_id for s in items}
    out: dict[str | None, list[StoredSpan]] = {}
    for s in items:
        out.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
    for kids in out.values():
        kids.sort(key=lambda s: (s.start_ns, s.span_id))
    return out
