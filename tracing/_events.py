"""Span events other areas add to the current span: guardrail decisions, approval waits and decisions.

Event names: `proctor.guardrail` (hook, guard, decision, reason), `proctor.approval.requested`,
`proctor.approval.decided` (approval id, tool, decision, decider, role, reason). Any code may call
`add_event` (a no-op when the current span is not recording, so it is safe everywhere).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

from ..exceptions import GuardrailTripped

__all__ = (
    'add_event',
    'apply_guardrails',
    'take_events_before_root',
    'GUARDRAIL_EVENT',
    'APPROVAL_REQUESTED_EVENT',
    'APPROVAL_DECIDED_EVENT',
)

GUARDRAIL_EVENT = 'proctor.guardrail'
APPROVAL_REQUESTED_EVENT = 'proctor.approval.requested'
APPROVAL_DECIDED_EVENT = 'proctor.approval.decided'


def _attr(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        return value if not isinstance(value, str) else value[:4000]
    return json.dumps(value, default=str)[:4000]


def add_event(name: str, attributes: Mapping[str, Any] | None = None) -> None:
    """Add event `name` to the current span; values that are not str/bool/int/float become JSON, None is dropped."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.add_event(name, {k: _attr(v) for k, v in (attributes or {}).items() if v is not None})


# Decisions taken on a run's task before its root span exists, attached to the root span when it starts.
_before_root: ContextVar[tuple[str, list[dict[str, Any]]] | None] = ContextVar(
    'proctor_events_before_root', default=None
)


def _guard_event(ctx: Any, attrs: dict[str, Any]) -> None:
    attrs = {**attrs, 'agent_path': ctx.agent_path, 'tool': ctx.tool}
    if trace.get_current_span().is_recording():
        add_event(GUARDRAIL_EVENT, attrs)
        return
    held = _before_root.get()
    if held is None or held[0] != ctx.run_id:
        held = (ctx.run_id, [])
        _before_root.set(held)
    held[1].append(attrs)


def take_events_before_root(run_id: str) -> list[dict[str, Any]]:
    """Guardrail events of run `run_id` taken before its root span started (once)."""
    held = _before_root.get()
    if held is None or held[0] != run_id:
        return []
    _before_root.set(None)
    return held[1]


def apply_guardrails(pipeline: Any, hook: str, payload: Any, ctx: Any, *, store: Any = None) -> Any:
    """`pipeline.apply(...)`, with each non-allow decision (and a block) added as a span event."""
    try:
        outcome = pipeline.apply(hook, payload, ctx, store=store)
    except GuardrailTripped as e:
        _guard_event(ctx, {'hook': hook, 'guard': e.guard, 'decision': 'block', 'reason': e.reason})
        raise
    for guard, decision in outcome.decisions:
        _guard_event(ctx, {'hook': hook, 'guard': guard, 'decision': decision.action, 'reason': decision.reason})
    return outcome
