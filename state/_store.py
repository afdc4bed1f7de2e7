"""The state store: one SQL database for runs, delegations, approvals, the tool journal, the
ledger, the audit log, stored spans and replay recordings.

Embedded default: a SQLite file in the state directory (`.proctor/` in the working directory, or
`PROCTOR_STATE_DIR`). Scale-out: `PROCTOR_DATABASE_URL=postgresql://...` puts the same tables in
Postgres. One schema (`proctor.state._schema`), one migration path (`StateStore.migrate`) for both.
DBOS keeps its own system tables beside these (`dbos.sqlite` in the state dir, or the `dbos`
schema of the same Postgres database).

Migrations are additive: opening a store (once per process and URL) creates missing tables, and a
database whose recorded version is older than `SCHEMA_VERSION` also gets every column and index the
schema has and it lacks. Adding a column to `_schema` therefore means: make it nullable or give it
a default, and bump `SCHEMA_VERSION`.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc

from ..exceptions import StateDirError

__all__ = (
    'StateStore',
    'resolve_state_dir',
    'resolve_database_url',
    'upgrade_schema',
    'add_missing_columns',
    'SCHEMA_VERSION',
)

#: 2: the columns added after the first release (ledger routing columns, span scope, audit and guard
#: event keys) and their unique indexes. 3: the evaluation tables (`proctor_eval_runs`, `_results`, `_cases`).
SCHEMA_VERSION = 3
T = TypeVar('T')


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
        #: Where DBOS keeps its system tables.
        self.dbos_url = self.database_url or f'sqlite:///{self.state_dir / "dbos.sqlite"}'

    def _prepare_dir(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StateDirError(
                f'cannot create state dir {self.state_dir}: {e.strerror}', path=str(self.state_dir)
            ) from e
        if not os.access(self.state_dir, os.R_OK | os.W_OK | os.X_OK):
            raise StateDirError(f'state dir {self.state_dir} is not readable and writable', path=str(self.state_dir))

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the short store access `fn(*args, **kwargs)` (a few statements, one transaction) from a
        coroutine: the one way coroutines reach the database.

        On SQLite it runs inline: a local WAL transaction takes a fraction of a millisecond, less CPU
        than the thread hop around it (~0.25 ms a hop on 2 cores, `benchmarks/README.md`). On a server
        database (round trips over the network) it runs in a worker thread. Anything that may wait
        (polling for a run or an approval) goes through `in_thread` instead."""
        if self.is_sqlite:
            return fn(*args, **kwargs)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    async def in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the blocking store access `fn(*args, **kwargs)` in a worker thread, whatever the
        database: for calls that wait (`wait_for_run`) or read much."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith('sqlite')

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
                self.url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=20,
                execution_options={'preserve_rowcount': True},
            )
        eng = sa.create_engine(self.url, connect_args={'check_same_thread': False, 'timeout': 30})

        @sa_event.listens_for(eng, 'connect')
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
        """Create missing tables, bring an older database's columns and indexes up to date, and
        record the schema version (idempotent, safe in parallel)."""
        from ._schema import metadata

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
                try:
                    metadata.create_all(eng, checkfirst=True)
                except sa_exc.IntegrityError:
                    pass  # another process created the same table at the same moment
                with eng.begin() as c:
                    upgrade_schema(c)
            except sa_exc.OperationalError as e:
                raise StateDirError(f'cannot open state database {self.url}: {e.orig}', path=str(self.state_dir)) from e
            self._migrated.add(self.url)

    def _migrate_postgres(self, eng: sa.Engine) -> None:
        from ._schema import metadata

        try:
            with eng.begin() as c:
                # Workers on several machines start together: one creates the tables while the
                # others wait on this lock (released at commit), then find them all there.
                c.execute(sa.text('SELECT pg_advisory_xact_lock(:key)'), {'key': _PG_MIGRATION_LOCK})
                metadata.create_all(c, checkfirst=True)
                upgrade_schema(c)
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as e:
            safe = sa.make_url(self.url).render_as_string(hide_password=True)
            why = ' '.join(str(e.orig).split())  # psycopg's messages span lines; the CLI prints one
            raise StateDirError(f'cannot open state database {safe}: {why}', path=safe) from e

    def dispose(self) -> None:
        with self._lock:
            eng = self._engines.pop(self.url, None)
            self._migrated.discard(self.url)
        if eng is not None:
            eng.dispose()


def upgrade_schema(conn: sa.Connection, metadata: sa.MetaData | None = None, *, version: int = SCHEMA_VERSION) -> int:
    """Bring the database on `conn` (its tables already created) to schema `version`: one SELECT when
    it is there already. Returns the version the database had before (0: none recorded)."""
    from ._schema import metadata as proctor_metadata
    from ._schema import schema_version

    rows = conn.execute(sa.select(schema_version.c.version)).scalars().all()
    had = max(rows, default=0)
    if had >= version:
        return had
    add_missing_columns(conn, metadata if metadata is not None else proctor_metadata)
    if rows:
        conn.execute(schema_version.update().values(version=version))
    else:
        conn.execute(schema_version.insert().values(version=version))
    return had


def add_missing_columns(conn: sa.Connection, metadata: sa.MetaData) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for every column of `metadata`'s tables the database lacks, then
    create their missing indexes (SQLite and Postgres). Returns the columns added ('table.column')."""
    from ..exceptions import StateDirError

    insp = sa.inspect(conn)
    prep = conn.dialect.identifier_preparer
    existing = set(insp.get_table_names())
    added: list[str] = []
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue
        have = {c['name'] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            ddl = f'ALTER TABLE {prep.format_table(table)} ADD COLUMN {prep.format_column(col)} {col.type.compile(conn.dialect)}'
            default = _default_sql(col, conn.dialect)
            if default is not None:
                ddl += f' DEFAULT {default}'
            if not col.nullable:
                if default is None or col.primary_key:
                    raise StateDirError(
                        f'cannot add column {table.name}.{col.name} to an existing database: '
                        'a new column must be nullable or have a default',
                        path=str(conn.engine.url),
                    )
                ddl += ' NOT NULL'
            try:
                conn.exec_driver_sql(ddl)  # Postgres: under the migration lock
            except sa_exc.OperationalError as e:
                # SQLite (no lock): another process added it at the same moment. A failed ALTER
                # changes nothing there and leaves the transaction usable.
                if conn.dialect.name != 'sqlite' or 'duplicate column' not in str(e.orig).lower():
                    raise
                continue
            added.append(f'{table.name}.{col.name}')
        for index in table.indexes:
            conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
    return added


def _default_sql(col: sa.Column[Any], dialect: sa.Dialect) -> str | None:
    """The column's default as SQL: its server default, or a scalar Python default as a literal."""
    server = col.server_default
    if isinstance(server, sa.DefaultClause):
        if isinstance(server.arg, str):
            return str(sa.literal(server.arg).compile(dialect=dialect, compile_kwargs={'literal_binds': True}))
        return str(server.arg.compile(dialect=dialect))  # type: ignore[union-attr]
    default = col.default
    if isinstance(default, sa.ColumnDefault) and default.is_scalar:
        return str(sa.literal(default.arg, col.type).compile(dialect=dialect, compile_kwargs={'literal_binds': True}))
    return None
