"""Tracing: OpenTelemetry setup, the local trace store, the audit log, recordings; the live terminal tree.

- Every team traces to the local trace store (`proctor traces list|show|export`), and to OTLP when
  `OTEL_EXPORTER_OTLP_ENDPOINT` is set; `add_event` puts guardrail/approval events on the current span.
- Every team with `record=True` (the default) records model responses and tool results
  (`Recorder`) and appends one hash-chained audit record per model call (`AuditObserver`);
  `append_audit` logs other decisions (approvals), `verify_audit` checks the chain.
- Replay (`proctor.orchestrator.replay`) rebuilds a team around the recording pieces here (`ReplayModel`,
  `ReplayToolset`); the comparison of two recordings (`Divergence`, `ForkDiff`) lives here too.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..state._audit import AuditEntry, AuditVerification, append_audit, audit_entries, audit_head, verify_audit
    from ._audit import AuditObserver
    from ._compare import Divergence, ForkDiff
    from ._events import APPROVAL_DECIDED_EVENT, APPROVAL_REQUESTED_EVENT, GUARDRAIL_EVENT, add_event
    from ._live_tree import LiveTree
    from ._recording import RecordedStep, Recorder, Recording
    from ._replay_model import ReplayModel, ReplayToolset
    from ._setup import flush_store, resolve_tracer_provider
    from ._store import StoredSpan, StoreSpanProcessor, TraceStore
    from ._view import TraceNode, trace_tree

__all__ = (
    'APPROVAL_DECIDED_EVENT',
    'APPROVAL_REQUESTED_EVENT',
    'GUARDRAIL_EVENT',
    'AuditEntry',
    'AuditObserver',
    'AuditVerification',
    'Divergence',
    'ForkDiff',
    'LiveTree',
    'Recorder',
    'RecordedStep',
    'Recording',
    'ReplayModel',
    'ReplayToolset',
    'StoreSpanProcessor',
    'StoredSpan',
    'TraceNode',
    'TraceStore',
    'add_event',
    'append_audit',
    'audit_entries',
    'audit_head',
    'flush_store',
    'resolve_tracer_provider',
    'trace_tree',
    'verify_audit',
)

#: Public name -> the submodule that defines it; imported on first access (PEP 562) so that
#: `import proctor.tracing` stays cheap and each name pulls in only what it needs.
_LAZY = {
    'AuditEntry': '..state._audit',
    'AuditVerification': '..state._audit',
    'append_audit': '..state._audit',
    'audit_entries': '..state._audit',
    'audit_head': '..state._audit',
    'verify_audit': '..state._audit',
    'AuditObserver': '._audit',
    'Divergence': '._compare',
    'ForkDiff': '._compare',
    'APPROVAL_DECIDED_EVENT': '._events',
    'APPROVAL_REQUESTED_EVENT': '._events',
    'GUARDRAIL_EVENT': '._events',
    'add_event': '._events',
    'LiveTree': '._live_tree',
    'Recorder': '._recording',
    'RecordedStep': '._recording',
    'Recording': '._recording',
    'ReplayModel': '._replay_model',
    'ReplayToolset': '._replay_model',
    'flush_store': '._setup',
    'resolve_tracer_provider': '._setup',
    'StoredSpan': '._store',
    'StoreSpanProcessor': '._store',
    'TraceStore': '._store',
    'TraceNode': '._view',
    'trace_tree': '._view',
}


from .._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
