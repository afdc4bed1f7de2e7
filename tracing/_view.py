"""A stored trace as a tree a person can read: per span its timing, model, tokens, cost and events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..state._store import StateStore
from ._store import StoredSpan, TraceStore, spans_by_parent

__all__ = ('TraceNode', 'TraceView', 'trace_tree', 'span_category')

_CATEGORIES = (
    ('team.run', 'run'),
    ('delegate', 'delegate'),
    ('invoke_agent', 'agent'),
    ('chat', 'model'),
    ('execute_tool', 'tool'),
    ('running tool', 'tool'),
)


def span_category(name: str) -> str:
    """run, delegate, agent, model, tool or other."""
    return next((cat for prefix, cat in _CATEGORIES if name.startswith(prefix)), 'other')


def _short(value: Any, n: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = ' '.join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + '…'


def _details(s: StoredSpan, cat: str) -> dict[str, Any]:
    a = s.attributes
    if cat in ('run', 'delegate'):
        keys = {
            'team': 'proctor.team',
            'project': 'proctor.project',
            'data_class': 'proctor.data_class',
            'specialist': 'proctor.specialist',
            'model': 'proctor.model_id',
            'route_reason': 'proctor.route_reason',
            'subtask': 'proctor.subtask',
            'input_tokens': 'proctor.input_tokens',
            'output_tokens': 'proctor.output_tokens',
            'cost_usd': 'proctor.cost_usd',
            'resumed': 'proctor.resumed',
        }
    elif cat == 'agent':
        keys = {
            'agent': 'gen_ai.agent.name',
            'model': 'model_name',
            'input_tokens': 'gen_ai.aggregated_usage.input_tokens',
            'output_tokens': 'gen_ai.aggregated_usage.output_tokens',
        }
    elif cat == 'model':
        keys = {
            'model': 'gen_ai.request.model',
            'response_model': 'gen_ai.response.model',
            'provider': 'gen_ai.provider.name',
            'input_tokens': 'gen_ai.usage.input_tokens',
            'output_tokens': 'gen_ai.usage.output_tokens',
            'finish_reasons': 'gen_ai.response.finish_reasons',
            'cost_usd': 'operation.cost',
        }
    elif cat == 'tool':
        keys = {
            'tool': 'gen_ai.tool.name',
            'call_id': 'gen_ai.tool.call.id',
            'args': 'gen_ai.tool.call.arguments',
            'result': 'gen_ai.tool.call.result',
        }
    else:
        keys = {}
    out = {k: a[v] for k, v in keys.items() if a.get(v) is not None and a.get(v) != ''}
    if not out.get('resumed', True):
        del out['resumed']
    if s.status == 'ERROR':
        out['error'] = a.get('otel.status_description') or 'failed'
    return out


@dataclass
class TraceNode:
    span_id: str
    name: str
    category: str
    start_ms: float  # since the trace's first span started
    duration_ms: float | None  # None: never ended (still running, or its process died)
    status: str
    details: dict[str, Any]
    events: list[dict[str, Any]]
    children: list[TraceNode] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_json(self, *, attributes: bool = False) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ('children', 'attributes')}
        d['children'] = [c.to_json(attributes=attributes) for c in self.children]
        if attributes:
            d['attributes'] = self.attributes
        return d

    def walk(self) -> list[TraceNode]:
        return [self, *(n for c in self.children for n in c.walk())]


@dataclass
class TraceView:
    run: Any  # RunRecord
    trace_id: str | None
    roots: list[TraceNode]
    span_count: int

    def to_json(self, *, attributes: bool = False) -> dict[str, Any]:
        r = self.run
        return {
            'run_id': r.run_id,
            'team': r.team,
            'project': r.project,
            'data_class': r.data_class,
            'status': r.status,
            'task': r.task,
            'duration_s': r.duration_s,
            'input_tokens': r.input_tokens,
            'output_tokens': r.output_tokens,
            'cost_usd': r.cost_usd,
            'trace_id': self.trace_id,
            'spans': self.span_count,
            'tree': [n.to_json(attributes=attributes) for n in self.roots],
        }


def trace_tree(store: StateStore, run_id: str) -> TraceView:
    """The stored trace of `run_id` (or a unique prefix) as a tree. Raises `UnknownRunError`."""
    from ..state._records import RunRecords

    run = RunRecords(store).get(run_id, with_delegations=False)
    stored = TraceStore(store).spans_of_run(run.run_id, run.trace_id)
    kids = spans_by_parent(stored)
    t0 = min((s.start_ns for s in stored), default=0)
    # Spans whose parent never ended (its process died) hang under the run's first root, marked.
    tops = kids.get(None, [])
    first_root = next((s for s in tops if s.parent_id is None), None)
    orphans = {s.span_id for s in tops if s.parent_id is not None}
    if first_root is not None and orphans:
        kids[None] = [s for s in tops if s.span_id not in orphans]
        kids[first_root.span_id] = sorted(
            kids.get(first_root.span_id, []) + [s for s in tops if s.span_id in orphans],
            key=lambda s: (s.start_ns, s.span_id),
        )

    def node(s: StoredSpan) -> TraceNode:
        cat = span_category(s.name)
        events = [
            {
                'name': e['name'],
                'at_ms': round(((e.get('time_ns') or t0) - t0) / 1e6, 3),
                'attributes': {k: _short(v, 300) for k, v in (e.get('attributes') or {}).items()},
            }
            for e in s.events
        ]
        return TraceNode(
            span_id=s.span_id,
            name=s.name,
            category=cat,
            start_ms=round((s.start_ns - t0) / 1e6, 3),
            duration_ms=None if s.duration_ms is None else round(s.duration_ms, 3),
            status=s.status or 'UNSET',
            details=_details(s, cat) | ({'parent': 'not stored (its process stopped)'} if s.span_id in orphans else {}),
            events=events,
            children=[node(c) for c in kids.get(s.span_id, [])],
            attributes=s.attributes,
        )

    return TraceView(
        run=run, trace_id=run.trace_id, roots=[node(s) for s in kids.get(None, [])], span_count=len(stored)
    )
