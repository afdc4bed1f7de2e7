"""Bring a state database created before the tracing columns existed up to date (once per process).

`StateStore.migrate` creates missing tables; it does not add columns to tables that already exist,
so the two nullable columns the tracing area added (`proctor_spans.scope`,
`proctor_audit.idem_key`) and the audit key's unique index are added here.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from .._schema import audit, spans
from .._state import StateStore

__all__ = ('ensure_tracing_schema',)

_done: set[str] = set()
_lock = threading.Lock()
_ADDED = ((spans, 'scope'), (audit, 'idem_key'))


def ensure_tracing_schema(store: StateStore) -> sa.Engine:
    """The store's engine, with the tracing columns present (cheap after the first call per URL)."""
    eng = store.engine
    if store.url in _done:
        return eng
    with _lock:
        if store.url in _done:
            return eng
        insp = sa.inspect(eng)
        prep = eng.dialect.identifier_preparer
        for table, col in _ADDED:
            if col in {c['name'] for c in insp.get_columns(table.name)}:
                continue
            ddl = f'ALTER TABLE {prep.quote(table.name)} ADD COLUMN {prep.quote(col)} {table.c[col].type.compile(eng.dialect)}'
            try:
                with eng.begin() as c:
                    c.exec_driver_sql(ddl)
            except sa.exc.DBAPIError:  # another process added it at the same moment
                pass
        with eng.begin() as c:
            c.exec_driver_sql('CREATE UNIQUE INDEX IF NOT EXISTS ix_proctor_audit_idem_key ON proctor_audit (idem_key)')
        _done.add(store.url)
    return eng
