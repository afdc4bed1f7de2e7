"""The state store: one SQL database for runs, delegations, approvals, the tool journal, the
ledger, the audit log, stored spans and replay recordings.

Embedded default: a SQLite file in the state directory (`.proctor/` in the working directory, or
`PROCTOR_STATE_DIR`). Scale-out: `PROCTOR_DATABASE_URL=postgresql://...` puts the same tables in
Postgres. One schema (`proctor._schema`), one migration path (`StateStore.migrate`) for both.
DBOS keeps its own system tables beside these (`dbos.sqlite` in the state dir, or the `dbos`
schema of the same Postgres database).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .exceptions import StateDirError

__all__ = ('StateStore', 'resolve_state_dir', 'resolve_database_url')

SCHEMA_VERSION = 1
# pg_advisory_xact_lock key serialising proctor's migrations (DBOS uses its own for its schema).
_PG_MIGRATION_LOCK = 0x70726F63746F72  # 'proctor'


def resolve_state_dir(state_dir: str | os.PathLike[str] | None = None) -> Path:
    """Explicit argument, else `PROCTOR_STATE_DIR`, else `.proctor` in the working directory."""
    raw = state_dir if state_dir is not None else os.environ.get('PROCTOR_STATE_DIR') or '.proctor'
    return Path(raw).expanduser().absolute()


def resolve_database_url(database_url: str | None = None) -> str | None:
    """Explicit argument, else `PROCTOR_DATABASE_URL`; `None` means the embedded SQLite file."""
    return database_url or os.environ.get('PROCTOR_DATABASE_URL') or None


def _postgres_url(url: str) -> str:
    # psycopg 3 is the driver we ship in the `postgres` extra (DBOS uses it too).
    u = sa.make_url(url)
    if u.drivername in ('postgresql', 'postgres'):
        u = u.set(drivername='postgresql+psycopg')
    return u.render_as_string(hide_password=False)


class StateStore:
    """A handle on the state database. Cheap to create; engines are shared per URL in a process."""

    _engines: dict[str, sa.Engine] = {}
    _migrated: set[str] = set()
    _lock = threading.Lock()

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, *, database_url: str | None = None) -> None:
        self.state_dir = resolve_state_dir(state_dir)
        self.database_url = resolve_database_url(database_url)
        self._prepare_dir()
        if self.database_url:
            self.url = _postgres_url(self.database_url)
        else:
            self.url = f'sqlite:///{self.state_dir / "proctor.db"}'

    def _prepare_dir(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StateDirError(f'cannot create state dir {self.state_dir}: {e.strerror}', path=str(self.state_dir)) from e
        if not os.access(self.state_dir, os.R_OK | os.W_OK | os.X_OK):
            raise StateDirError(f'state dir {self.state_dir} is not readable and writable', path=str(self.state_dir))

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith('sqlite')

    @property
    def dbos_url(self) -> str:
        """Where DBOS keeps its system tables."""
        if self.database_url:
            return self.database_url
        return f'sqlite:///{self.state_dir / "dbos.sqlite"}'

    @property
    def engine(self) -> sa.Engine:
        eng = self._engines.get(self.url)
        if eng is None:
            with self._lock:
                eng = self._engines.get(self.url)
                if eng is None:
                    eng = self._create_engine()
                    self._engines[self.url] = eng
        if self.url not in self._migrated:
            self.migrate()
        return eng

    def _create_engine(self) -> sa.Engine:
        if not self.is_sqlite:
            # preserve_rowcount: psycopg reports no rowcount for INSERT (-1) unless asked, and the
            # journal, records and approvals test `rowcount` after INSERT ... ON CONFLICT DO NOTHING.
            return sa.create_engine(
                self.url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                execution_options={'preserve_rowcount': True},
            )  # fmt: skip
        eng = sa.create_engine(self.url, connect_args={'check_same_thread': False, 'timeout': 30})

        @sa.event.listens_for(eng, 'connect')
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            # WAL lets readers (CLI, console) run beside a writing run; NORMAL is durable across
            # process crashes (only an OS crash can lose the last commits).
            cur = dbapi_conn.cursor()
            cur.execute('PRAGMA journal_mode=WAL')
            cur.execute('PRAGMA synchronous=NORMAL')
            cur.execute('PRAGMA busy_timeout=30000')
            cur.close()

        return eng

    def migrate(self) -> None:
        """Create missing tables and record the schema version (idempotent, safe in parallel)."""
        from ._schema import metadata, schema_version

        with self._lock:
            if self.url in self._migrated:
                return
            eng = self._engines.get(self.url) or self._create_engine()
            self._engines[self.url] = eng
            if not self.is_sqlite:
                self._migrate_postgres(eng)
                self._migrated.add(self.url)
                return
            try:
                metadata.create_all(eng, checkfirst=True)
            except sa.exc.OperationalError as e:
                raise StateDirError(f'cannot open state database {self.url}: {e.orig}', path=str(self.state_dir)) from e
            except sa.exc.IntegrityError:
                pass  # another process created the same table at the same moment
            with eng.begin() as c:
                row = c.execute(sa.select(schema_version.c.version)).first()
                if row is None:
                    c.execute(schema_version.insert().values(version=SCHEMA_VERSION))
            self._migrated.add(self.url)

    def _migrate_postgres(self, eng: sa.Engine) -> None:
        from ._schema import metadata, schema_version

        try:
            with eng.begin() as c:
                # Workers on several machines start together: one creates the tables while the
                # others wait on this lock (released at commit), then find them all there.
                c.execute(sa.text('SELECT pg_advisory_xact_lock(:key)'), {'key': _PG_MIGRATION_LOCK})
                metadata.create_all(c, checkfirst=True)
                if c.execute(sa.select(schema_version.c.version)).first() is None:
                    c.execute(schema_version.insert().values(version=SCHEMA_VERSION))
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as e:
            safe = sa.make_url(self.url).render_as_string(hide_password=True)
            why = ' '.join(str(e.orig).split())  # psycopg's messages span lines; the CLI prints one
            raise StateDirError(f'cannot open state database {safe}: {why}', path=safe) from e

    def dispose(self) -> None:
        with self._lock:
            eng = self._engines.pop(self.url, None)
            self._migrated.discard(self.url)
        if eng is not None:
            eng.dispose()
