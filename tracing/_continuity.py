"""One trace per run, across crashes and approval waits.

When a run starts, its root `team.run` span is stored while still open (a placeholder row, written
with the next flush of the store, that the full span replaces when it ends), and the run's trace id
goes to `proctor_runs.trace_id` in the same write. When a durable run's workflow body runs again (recovery after a crash, a
resume after an approval wait), `trace_parent` finds that first root span and the new `team.run`
span becomes its child, in the same trace; so does a recovered delegation (a DBOS child workflow
recovered on its own, with no span around it). A root whose process died stays in the store with no
end time: the viewer shows it as interrupted.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.context import Context

from ..state._schema import spans
from ..state._store import StateStore
from ._events import GUARDRAIL_EVENT, add_event, take_events_before_root
from ._setup import store_processor
from ._store import ROOT_SPAN_NAME, register_trace

__all__ = ('trace_parent', 'anchor_run', 'ROOT_SPAN_NAME')


def trace_parent(provider: Any, store: StateStore, run_id: str) -> Context | None:
    """The context of run `run_id`'s first root span, if an earlier execution stored one; else None (blocking)."""
    proc = store_processor(provider, store)
    # A resume in this process may come before the background write of the root: look there first.
    found = proc.open_root(run_id, ROOT_SPAN_NAME) if proc is not None else None
    if found is None:
        eng = store.engine
        with eng.connect() as c:
            row = c.execute(
                sa.select(spans.c.trace_id, spans.c.span_id)
                .where(spans.c.run_id == run_id, spans.c.name == ROOT_SPAN_NAME)
                .order_by(spans.c.start_ns)
                .limit(1)
            ).first()
        if row is None:
            return None
        found = (row.trace_id, row.span_id)
    trace_id = int(found[0], 16)
    register_trace(trace_id, store, run_id)
    ctx = trace.SpanContext(
        trace_id, int(found[1], 16), is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(ctx))


def anchor_run(provider: Any, store: StateStore, run_id: str, span: Any) -> None:
    """Route the root span's trace to `store` and store the span while it is open, with the run's
    trace id in `proctor_runs.trace_id` (non-blocking: written with the next flush)."""
    if not span.is_recording():
        return
    register_trace(span.get_span_context().trace_id, store, run_id)
    for attrs in take_events_before_root(run_id):
        add_event(GUARDRAIL_EVENT, attrs)
    proc = store_processor(provider, store)
    if proc is not None:
        proc.start(span, run_id)
