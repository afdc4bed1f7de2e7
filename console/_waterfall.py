"""Lay stored spans out as a waterfall: one row per span in tree order, bars placed by start and end time.

Bars share one time axis, so delegations that ran in parallel overlap horizontally; each row also
says how many of its siblings overlapped it in time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..core._format import human_duration
from ..state._records import lead_delegation

__all__ = ('WaterfallRow', 'EventMark', 'Waterfall', 'layout', 'category_of', 'spans_from_records')


@dataclass
class WaterfallRow:
    span_id: str
    parent_id: str | None
    name: str
    category: str
    depth: int
    left_pct: float
    width_pct: float
    start_ms: float  # since the first span started
    duration_ms: float
    status: str
    open: bool  # no end recorded yet (still running, or the process died)
    label_at: str  # where the duration label fits: after|before|inside the bar
    parallel: int  # siblings whose time overlaps this span's
    agent_path: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    marks: list[EventMark] = field(default_factory=list)


@dataclass
class EventMark:
    """A span event (guardrail decision, approval requested/decided) placed on the time axis."""

    pct: float
    kind: str  # approval|guard|event
    label: str


@dataclass
class Waterfall:
    rows: list[WaterfallRow]
    total_ms: float
    ticks: list[tuple[float, str]]  # (percent, label)

    @property
    def max_parallel(self) -> int:
        return max((r.parallel + 1 for r in self.rows if r.category == 'delegate'), default=0)


_CATEGORIES = (
    ('team.run', 'run'),
    ('delegate', 'delegate'),
    ('invoke_agent', 'agent'),
    ('agent run', 'agent'),
    ('chat', 'model'),
    ('execute_tool', 'tool'),
    ('running tool', 'tool'),
    ('guardrail', 'guard'),
    ('approval', 'approval'),
)


def category_of(name: str) -> str:
    """A coarse kind for colouring: run, delegate, agent, model, tool, guard, approval or other."""
    low = name.lower()
    for prefix, cat in _CATEGORIES:
        if low.startswith(prefix):
            return cat
    return 'other'


def _label(ms: float) -> str:
    return human_duration(ms / 1000)


def _ticks(total_ms: float, n: int = 5) -> list[tuple[float, str]]:
    if total_ms <= 0:
        return [(0.0, '0 ms')]
    return [(100.0 * i / n, _label(total_ms * i / n)) for i in range(n + 1)]


_MARK_KEYS = ('decision', 'decider', 'guard', 'hook', 'tool', 'approval_id', 'reason')


def _marks(events: list[Any], t0: int, total: int) -> list[EventMark]:
    out = []
    for e in events:
        if not isinstance(e, dict) or not isinstance(e.get('time_ns'), int):
            continue
        name = str(e.get('name', 'event'))
        attrs = e.get('attributes') or {}
        kind = 'approval' if 'approval' in name else 'guard' if 'guardrail' in name else 'event'
        details = ', '.join(f'{k}={attrs[k]}' for k in _MARK_KEYS if attrs.get(k) not in (None, ''))
        pct = min(max(100.0 * (e['time_ns'] - t0) / total, 0.0), 100.0)
        out.append(EventMark(pct, kind, f'{name}: {details}' if details else name))
    return out


def _group(span: dict[str, Any], by_id: dict[str, Any]) -> Any:
    """Spans that compete for the same parent's time: siblings, and delegations made by the same agent
    (each delegation span sits under its own tool-call span, so it has no siblings of its own)."""
    path = (span.get('attributes') or {}).get('proctor.agent_path')
    if category_of(span['name']) == 'delegate' and isinstance(path, str) and '>' in path:
        return ('delegate', span['trace_id'] if 'trace_id' in span else None, path.rsplit('>', 1)[0])
    return ('child', span['parent_id'] if span['parent_id'] in by_id else None)


def layout(span_rows: list[dict[str, Any]], *, now_ns: int | None = None) -> Waterfall:
    """Rows in depth-first order (children by start time), with bar geometry in percent of the trace."""
    if not span_rows:
        return Waterfall([], 0.0, [])
    now_ns = now_ns or time.time_ns()
    by_id = {s['span_id']: s for s in span_rows}
    t0 = min(s['start_ns'] for s in span_rows)
    t1 = max(max(s['end_ns'] or now_ns, s['start_ns']) for s in span_rows)
    total = max(t1 - t0, 1)
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in span_rows:
        parent = s['parent_id'] if s['parent_id'] in by_id else None
        children.setdefault(parent, []).append(s)
    for kids in children.values():
        kids.sort(key=lambda s: (s['start_ns'], s['span_id']))

    groups: dict[Any, list[dict[str, Any]]] = {}
    for s in span_rows:
        groups.setdefault(_group(s, by_id), []).append(s)

    rows: list[WaterfallRow] = []
    stack: list[tuple[dict[str, Any], int]] = [(s, 0) for s in reversed(children.get(None, []))]
    seen: set[str] = set()
    while stack:
        s, depth = stack.pop()
        if s['span_id'] in seen:  # a parent cycle in bad data must not loop forever
            continue
        seen.add(s['span_id'])
        end = s['end_ns'] or now_ns
        peers = groups.get(_group(s, by_id), [])
        overlap = sum(
            1 for o in peers if o is not s and o['start_ns'] < end and (o['end_ns'] or now_ns) > s['start_ns']
        )
        attrs = s.get('attributes') or {}
        rows.append(
            WaterfallRow(
                span_id=s['span_id'],
                parent_id=s['parent_id'],
                name=s['name'],
                category=category_of(s['name']),
                depth=depth,
                left_pct=100.0 * (s['start_ns'] - t0) / total,
                width_pct=max(100.0 * (end - s['start_ns']) / total, 0.4),
                start_ms=(s['start_ns'] - t0) / 1e6,
                duration_ms=(end - s['start_ns']) / 1e6,
                status=(s.get('status') or 'unset').lower(),
                open=s['end_ns'] is None,
                label_at='after',
                parallel=overlap,
                agent_path=attrs.get('proctor.agent_path'),
                attributes=attrs,
                events=s.get('events') or [],
                marks=_marks(s.get('events') or [], t0, total),
            )
        )
        for kid in reversed(children.get(s['span_id'], [])):
            stack.append((kid, depth + 1))
    # clamp so the last bar never spills past the axis
    for r in rows:
        r.left_pct = min(r.left_pct, 99.6)
        r.width_pct = min(r.width_pct, 100.0 - r.left_pct)
        if r.left_pct + r.width_pct > 82:  # no room after the bar
            r.label_at = 'before' if r.left_pct > 12 else 'inside'
    total_ms = total / 1e6
    return Waterfall(rows, total_ms, _ticks(total_ms))


def spans_from_records(rec: Any) -> list[dict[str, Any]]:
    """Span-like rows from a run's run and delegation records, for runs that stored no spans.

    A sub-team's delegations hang under their lead's delegation (whose id theirs extends).
    """

    def ns(ts: float | None) -> int | None:
        return None if ts is None else int(ts * 1e9)

    root = {
        'span_id': 'run',
        'parent_id': None,
        'name': 'team.run',
        'start_ns': ns(rec.started_at),
        'end_ns': ns(rec.finished_at),
        'status': 'error' if rec.status == 'failed' else 'ok',
        'attributes': {'proctor.run_id': rec.run_id, 'proctor.agent_path': 'supervisor'},
    }
    rows = [root]
    by_id: dict[str, str] = {}  # delegation id -> its row's span id
    for i, d in enumerate(sorted(rec.delegations, key=lambda d: d.started_at)):
        sid = f'd{i}'
        lead = lead_delegation(d.delegation_id, by_id)
        rows.append(
            {
                'span_id': sid,
                'parent_id': by_id[lead] if lead is not None else 'run',
                'name': f'delegate {d.specialist}',
                'start_ns': ns(d.started_at),
                'end_ns': ns(d.finished_at),
                'status': 'error' if d.status == 'failed' else 'ok',
                'attributes': {
                    'proctor.agent_path': d.agent_path,
                    'proctor.model_id': d.model_id,
                    'proctor.subtask': d.subtask,
                },
            }
        )
        by_id[d.delegation_id] = sid
    return rows
