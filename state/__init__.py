"""Durable state: the state store (SQLite or Postgres), its schema, run records, the buffered
writer, the audit chain's storage, the DBOS adapter, the run queue and worker heartbeats.

It imports only `proctor.core`; everything above it keeps its data here."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._audit import AuditEntry, AuditVerification, append_audit, audit_entries, audit_head, verify_audit
    from ._heartbeats import Heartbeats, WorkerRecord
    from ._queue import RUN_QUEUE, submit_run, wait_for_run
    from ._records import DelegationRecord, DelegationStatus, RunRecord, RunRecords, RunStatus
    from ._scope import RunScope, current_scope, run_scope
    from ._store import SCHEMA_VERSION, StateStore, resolve_database_url, resolve_state_dir
    from ._writer import BufferedWriter, Flusher, flusher, write_transaction

__all__ = (
    'append_audit',
    'audit_entries',
    'audit_head',
    'AuditEntry',
    'AuditVerification',
    'BufferedWriter',
    'current_scope',
    'DelegationRecord',
    'DelegationStatus',
    'Flusher',
    'flusher',
    'Heartbeats',
    'resolve_database_url',
    'resolve_state_dir',
    'RUN_QUEUE',
    'run_scope',
    'RunRecord',
    'RunRecords',
    'RunStatus',
    'RunScope',
    'SCHEMA_VERSION',
    'StateStore',
    'submit_run',
    'verify_audit',
    'wait_for_run',
    'WorkerRecord',
    'write_transaction',
)

#: Public name -> the submodule that defines it; imported on first access (PEP 562).
_LAZY = {
    'AuditEntry': '._audit',
    'AuditVerification': '._audit',
    'append_audit': '._audit',
    'audit_entries': '._audit',
    'audit_head': '._audit',
    'verify_audit': '._audit',
    'Heartbeats': '._heartbeats',
    'WorkerRecord': '._heartbeats',
    'RUN_QUEUE': '._queue',
    'submit_run': '._queue',
    'wait_for_run': '._queue',
    'DelegationRecord': '._records',
    'DelegationStatus': '._records',
    'RunRecord': '._records',
    'RunRecords': '._records',
    'RunStatus': '._records',
    'RunScope': '._scope',
    'current_scope': '._scope',
    'run_scope': '._scope',
    'SCHEMA_VERSION': '._store',
    'StateStore': '._store',
    'resolve_database_url': '._store',
    'resolve_state_dir': '._store',
    'BufferedWriter': '._writer',
    'Flusher': '._writer',
    'flusher': '._writer',
    'write_transaction': '._writer',
}


from .._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
