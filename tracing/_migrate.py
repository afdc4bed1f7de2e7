"""Bring a state database created before the tracing columns existed up to date.

`StateStore.migrate` (run when a store is first used in a process) adds the columns the tracing
area added to existing tables (`proctor_spans.scope`, `proctor_audit.idem_key`) and the audit key's
unique index; this is the tracing code's name for it.
"""

from __future__ import annotations

import sqlalchemy as sa

from .._state import StateStore

__all__ = ('ensure_tracing_schema',)


def ensure_tracing_schema(store: StateStore) -> sa.Engine:
    """The store's engine, with the tracing columns present."""
    return store.engine
