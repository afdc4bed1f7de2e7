"""The audit log: append-only and hash-chained, one record per model call and per approval decision.

Each row of `proctor_audit` has a `seq` (1, 2, 3, ... with no gaps), the hash of the row before it
(`prev_hash`, 64 zeros for the first) and its own `hash = sha256(prev_hash + canonical JSON of
{seq, kind, run_id, idem_key, created_at, record})`. Altering, removing or reordering a row breaks
the chain at that row, which `verify_audit` (and `proctor audit verify`) names. Truncating the tail
keeps a valid chain: compare `audit_head` with a copy kept elsewhere to detect that.

The log is kept apart from traces and never sampled. Appends are serialized (SQLite
`BEGIN IMMEDIATE`, a Postgres advisory lock) so concurrent runs and processes extend one chain.
An append with an `idem_key` already in the log is a no-op: a recovered run re-runs its hooks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from . import _sql
from ._schema import audit
from ._store import StateStore
from ._writer import flusher, write_transaction

__all__ = (
    'AuditEntry',
    'AuditVerification',
    'append_audit',
    'append_in',
    'audit_entries',
    'audit_head',
    'verify_audit',
    'canonical_json',
    'GENESIS_HASH',
)

GENESIS_HASH = '0' * 64


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text: the same value always gives the same string."""
    return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False, default=str)


def _entry_hash(
    prev_hash: str, *, seq: int, kind: str, run_id: str | None, idem_key: str | None, created_at: float, record: str
) -> str:
    body = canonical_json(
        {'seq': seq, 'kind': kind, 'run_id': run_id, 'idem_key': idem_key, 'created_at': created_at, 'record': record}
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    kind: str
    run_id: str | None
    record: dict[str, Any]
    prev_hash: str
    hash: str
    created_at: float
    idem_key: str | None = None


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        kind=row.kind,
        run_id=row.run_id,
        record=json.loads(row.record),
        prev_hash=row.prev_hash,
        hash=row.hash,
        created_at=row.created_at,
        idem_key=row.idem_key,
    )


def append_audit(
    store: StateStore, kind: str, record: dict[str, Any], *, run_id: str | None = None, key: str | None = None
) -> AuditEntry:
    """Append one record now (blocking). `key` makes it idempotent: the entry already logged under it is returned.

    For approval decisions: `append_audit(store, 'approval_decision', {'approval_id': ..., 'tool': ...,
    'decider': ..., 'role': ..., 'decision': ..., 'reason': ...}, run_id=..., key=f'approval:{id}')`.
    """
    flusher.flush_store(store)  # model calls queued in this process come first, as they happened first
    return _append_many(store, [(kind, record, run_id, key)])[0]


# Built once: a flush runs them every time.
_TAIL = sa.select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
_LOGGED = sa.select(audit).where(audit.c.idem_key.in_(sa.bindparam('keys', expanding=True)))
_APPEND = audit.insert()


def _append_many(
    store: StateStore, items: list[tuple[str, dict[str, Any], str | None, str | None]]
) -> list[AuditEntry]:
    """Append records in order, in one transaction holding the chain's lock."""
    with write_transaction(store) as c:
        return append_in(c, items)


def append_in(c: sa.Connection, items: list[tuple[str, dict[str, Any], str | None, str | None]]) -> list[AuditEntry]:
    """Append records in a transaction that holds the chain's lock (`write_transaction`)."""
    out: list[AuditEntry] = []
    tail = _sql.first(c, _TAIL)
    seq, prev = (0, GENESIS_HASH) if tail is None else (int(tail[0]), str(tail[1]))
    keys = [k for _, _, _, k in items if k is not None]
    # Keys logged already (a recovered run's hooks run again): looked up only when there are any.
    seen = _sql.present(c, audit.c.idem_key, keys)
    logged = {r.idem_key: _entry(r) for r in c.execute(_LOGGED, {'keys': list(seen)})} if seen else {}
    rows = []
    for kind, record, run_id, key in items:
        if key is not None and key in logged:
            out.append(logged[key])
            continue
        seq, text, now = seq + 1, canonical_json(record), round(time.time(), 6)
        digest = _entry_hash(prev, seq=seq, kind=kind, run_id=run_id, idem_key=key, created_at=now, record=text)
        rows.append(
            dict(
                seq=seq,
                run_id=run_id,
                kind=kind,
                record=text,
                prev_hash=prev,
                hash=digest,
                created_at=now,
                idem_key=key,
            )
        )
        entry = AuditEntry(seq, kind, run_id, record, prev, digest, now, key)
        out.append(entry)
        if key is not None:
            logged[key] = entry
        prev = digest
    if rows:
        _sql.write(c, _APPEND, rows)
    return out


def audit_entries(store: StateStore, *, run_id: str | None = None, limit: int | None = None) -> list[AuditEntry]:
    """Entries in chain order (of one run, when given)."""
    flusher.flush_store(store)
    eng = store.engine
    q = sa.select(audit).order_by(audit.c.seq)
    if run_id is not None:
        q = q.where(audit.c.run_id == run_id)
    if limit is not None:
        q = q.limit(limit)
    with eng.connect() as c:
        return [_entry(r) for r in c.execute(q)]


def audit_head(store: StateStore) -> tuple[int, str]:
    """(seq, hash) of the last entry: keep it elsewhere to detect a truncated tail later."""
    flusher.flush_store(store)
    eng = store.engine
    with eng.connect() as c:
        tail = c.execute(sa.select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)).first()
    return (0, GENESIS_HASH) if tail is None else (tail.seq, tail.hash)


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    problem: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f'audit chain ok: {self.checked} records, head {self.head_seq} {self.head_hash[:16]}'
        return f'audit chain broken at record {self.bad_seq}: {self.problem}'


def _rows(store: StateStore) -> Iterator[Any]:
    eng = store.engine
    with eng.connect() as c:
        yield from c.execute(sa.select(audit).order_by(audit.c.seq).execution_options(yield_per=1000))


def verify_audit(store: StateStore, *, expect_head: str | None = None) -> AuditVerification:
    """Walk the chain from the first record; the first record that breaks it is named."""
    flusher.flush_store(store)  # this process's queued records first
    prev_hash, expected, checked = GENESIS_HASH, 1, 0
    for row in _rows(store):
        what = f'{row.kind}, run {row.run_id[:12] if row.run_id else "-"}'
        if row.seq != expected:
            return AuditVerification(
                False,
                checked,
                expected - 1,
                prev_hash,
                expected,
                f'record {expected} is missing (the next one is {row.seq}): a record was removed',
            )
        if row.prev_hash != prev_hash:
            return AuditVerification(
                False,
                checked,
                expected - 1,
                prev_hash,
                row.seq,
                f'({what}) does not chain to record {row.seq - 1}: a record was removed, '
                f'reordered or rewritten before it',
            )
        digest = _entry_hash(
            row.prev_hash,
            seq=row.seq,
            kind=row.kind,
            run_id=row.run_id,
            idem_key=row.idem_key,
            created_at=row.created_at,
            record=row.record,
        )
        if digest != row.hash:
            return AuditVerification(
                False,
                checked,
                expected - 1,
                prev_hash,
                row.seq,
                f'({what}) its contents do not match its hash: the record was altered',
            )
        prev_hash, expected, checked = row.hash, expected + 1, checked + 1
    if expect_head is not None and expect_head != prev_hash:
        return AuditVerification(
            False,
            checked,
            expected - 1,
            prev_hash,
            expected - 1,
            f'the head hash is {prev_hash[:16]}…, not the expected {expect_head[:16]}…: '
            'records were removed from the end or rewritten',
        )
    return AuditVerification(True, checked, expected - 1, prev_hash)
