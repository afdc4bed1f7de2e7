"""Buffered writes to the state store: `BufferedWriter` and the one background `flusher` of the process.

Observers that write (the span store, the recorder, the audit log, the ledger) only append to a
buffer on the hot path; the flusher writes every buffer of one store together, in one transaction,
each second in the background, at the end of a run or delegation, and before any read in this process.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import sqlalchemy as sa

from .._log import get_logger
from ._store import StateStore

__all__ = ('BufferedWriter', 'Flusher', 'flusher', 'write_transaction')

log = get_logger('proctor.state')

_PG_LOCK_ID = 0x70726F63  # 'proc': one advisory lock for the audit chain
_local_lock = threading.Lock()


@contextmanager
def write_transaction(store: StateStore, *, chain: bool = True) -> Iterator[sa.Connection]:
    """One write transaction on `store`, committed when the block ends (rolled back if it raises).
    `chain`: it extends the audit hash chain, so it is serialized with the chain's other appends (a
    process lock, and on Postgres the chain's advisory lock). On SQLite it is `BEGIN IMMEDIATE`,
    which takes the database's write lock at once."""
    with _local_lock if chain else nullcontext(), store.engine.connect() as c:
        if not store.is_sqlite:
            if chain:
                c.execute(sa.text('SELECT pg_advisory_xact_lock(:k)'), {'k': _PG_LOCK_ID})
            try:
                yield c
                c.commit()
            except BaseException:
                c.rollback()
                raise
            return
        # On SQLite the transaction is the driver's: BEGIN and COMMIT go to `sqlite3` directly (the
        # hot path's statements run there too, `_sql`). A statement run through SQLAlchemy begins
        # its transaction object too (a no-op for `sqlite3`), and then its commit is the driver's.
        driver = c.connection.driver_connection
        assert driver is not None
        driver.execute('BEGIN IMMEDIATE')
        try:
            yield c
            if c.in_transaction():
                c.commit()
            else:
                driver.commit()
        except BaseException:
            if c.in_transaction():
                c.rollback()
            else:
                driver.rollback()
            raise


_MAX_FAILURES = 30


class BufferedWriter:
    """A write buffer of one state store. Hooks only append items (the run never waits on the
    database); the shared flusher writes the items of every buffer of a store together, in one
    transaction (`write_batch(conn, items)`): each second in the background, at the end of a run or
    delegation (`settle`), and before any read or direct write in this process (`flush_store`).

    A failed write puts the items back for the next flush, in order, up to `_MAX_FAILURES`
    consecutive failures (then they are dropped, so a broken database cannot grow the queue forever).
    `needs_chain_lock`: the items extend the audit hash chain, which needs the chain's lock.
    """

    needs_chain_lock = False
    must_write = True  # a failed write of this buffer fails the flush (span writes only log)

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._buf: deque[Any] = deque()
        self._failures = 0
        flusher.add(self)

    @property
    def pending(self) -> int:
        return len(self._buf)

    def take(self, *, checkpoint: bool = False) -> list[Any]:
        """The queued items, removed from the buffer. `checkpoint`: taken by a mid-run checkpoint's
        write (`Flusher.flush_store`), which needs only what must be stored."""
        items = []
        while self._buf:
            items.append(self._buf.popleft())
        return items

    def restore(self, items: list[Any]) -> None:
        self._failures += 1
        if self._failures < _MAX_FAILURES:
            self._buf.extendleft(reversed(items))  # kept for the next flush

    def written(self) -> None:
        self._failures = 0

    def write_batch(self, conn: sa.Connection, items: list[Any]) -> None:
        raise NotImplementedError

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write everything queued for this buffer's store now (blocking)."""
        flusher.flush_store(self.store)
        return True


class Flusher:
    """One daemon thread for every write buffer of the process (span processors, recorders, the
    audit log): each second it writes what they hold, each store's buffers in one transaction."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._by_store: dict[str, weakref.WeakSet[BufferedWriter]] = {}  # store url -> its buffers
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._store_locks: dict[str, threading.Lock] = {}

    def add(self, buffer: BufferedWriter) -> None:
        with self._lock:
            self._by_store.setdefault(buffer.store.url, weakref.WeakSet()).add(buffer)
            self._store_locks.setdefault(buffer.store.url, threading.Lock())
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name='proctor-trace-store', daemon=True)
                self._thread.start()
                atexit.register(self.flush_all)  # the thread is a daemon: write what is left at exit

    def flush_all(self) -> None:
        # dict.copy: one step under the GIL, while `add` may run in another thread
        stores = {url: b.store for url, bs in self._by_store.copy().items() for b in list(bs) if b.pending}
        for store in stores.values():
            try:
                self.flush_store(store)
            except Exception as e:
                log.warning('state store write failed', store=store.url, error=f'{type(e).__name__}: {e}')

    def wake(self) -> None:
        self._wake.set()

    def buffers_of(self, store: StateStore) -> list[BufferedWriter]:
        """The buffers writing to `store`."""
        return list(self._by_store.get(store.url, ()))

    def pending(self, store: StateStore, *, must_write: bool = False) -> bool:
        """Something of `store` is queued, or being written right now (whose commit a caller that
        needs it stored must wait for: `flush_store` does). `must_write`: only what must be stored
        (recordings, audit, ledger, run rows), not spans."""
        lock = self._store_locks.get(store.url)
        if lock is None:
            return False
        return lock.locked() or any(b.pending for b in self.buffers_of(store) if b.must_write or not must_write)

    def flush_store(self, store: StateStore, *, checkpoint: bool = False) -> None:
        """Write everything buffered for `store` now, in one transaction (blocking; waits for a write
        already under way). Raises when a buffer that must be written (recordings, audit) failed;
        its items are kept for the next flush. `checkpoint`: the write of a mid-run checkpoint
        (`tracing.settle(spans=False)`): buffers may leave out what can wait for the next write
        (the trace store leaves its placeholder rows of spans still running to it)."""
        lock = self._store_locks.get(store.url)
        if lock is None:
            return
        with lock:
            taken: list[tuple[BufferedWriter, list[Any]]] = []
            try:
                for b in self.buffers_of(store):
                    if b.pending and (items := b.take(checkpoint=checkpoint)):
                        taken.append((b, items))
            except BaseException:
                # A buffer that failed to hand over its items must not lose the others' already taken.
                for b, items in taken:
                    b.restore(items)
                raise
            if not taken:
                return
            try:
                self._write(store, taken)
            except BaseException as e:
                for b, items in taken:
                    b.restore(items)
                if isinstance(e, Exception) and not any(b.must_write for b, _ in taken):
                    log.warning('trace store write failed', store=store.url, error=f'{type(e).__name__}: {e}')
                    return
                raise
            for b, _ in taken:
                b.written()

    @staticmethod
    def _write(store: StateStore, taken: list[tuple[BufferedWriter, list[Any]]]) -> None:
        with write_transaction(store, chain=any(b.needs_chain_lock for b, _ in taken)) as c:
            for b, items in taken:
                b.write_batch(c, items)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush_all()


#: The process's one background writer (a daemon thread started with the first buffer).
flusher = Flusher()
