"""The hot path's statements, compiled once and, on SQLite, run on the driver's connection.

A flush writes a run's rows in a dozen statements (run and delegation rows, ledger, audit). Through
SQLAlchemy's `Connection.execute` each costs more CPU than SQLite takes to run it (building the
execution context, looking the compiled form up in the cache by the statement's key, wrapping the
cursor in a result): ~60% of a statement's time. These helpers take the same module-level Core
statements; on SQLite they compile each once per set of parameter names (named parameters, each
value through its type's bind processor, as SQLAlchemy would) and run it on the transaction's own
`sqlite3` connection, in the same transaction. On other databases they are `Connection.execute`.

`first`, `scalar` and `scalars` return column values as the driver does (for counts, keys, hashes);
`mappings` converts each through its column type's result processor (a Boolean comes back a bool), as
SQLAlchemy does. `driver_sql` runs SQL text already in the driver's parameter style. An expanding
`IN` parameter cannot be compiled once: `present` asks which of some keys a column holds with the
list as one JSON parameter instead; `inserted` tells which rows an `ON CONFLICT DO NOTHING` insert
added from each row's change count, without asking first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

__all__ = ('driver_sql', 'first', 'inserted', 'mappings', 'present', 'scalar', 'scalars', 'write')

#: SQLite's dialect with `:name` parameters, which `sqlite3` binds from a dict.
_NAMED = SQLiteDialect_pysqlite(paramstyle='named')

_Compiled = tuple[str, dict[str, Callable[[Any], Any]], dict[str, Any]]
_cache: dict[tuple[int, tuple[str, ...]], _Compiled] = {}
#: The statements compiled (kept alive so their ids stay theirs): module constants, a few dozen.
_statements: dict[int, sa.Executable] = {}


def _compiled(stmt: sa.Executable, keys: tuple[str, ...]) -> _Compiled:
    key = (id(stmt), keys)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    is_insert = isinstance(stmt, sa.Insert)
    compiled = stmt.compile(dialect=_NAMED, column_keys=list(keys) if is_insert else None)  # type: ignore[attr-defined]
    processors: dict[str, Callable[[Any], Any]] = {}
    constants: dict[str, Any] = {}
    for name, bind in compiled.binds.items():
        if bind.expanding:
            raise ValueError(f'{name}: an expanding parameter cannot be compiled once')
        process = bind.type.dialect_impl(_NAMED).bind_processor(_NAMED)
        if process is not None:
            processors[name] = process
        if name not in keys:
            constants[name] = bind.effective_value
    _statements[id(stmt)] = stmt
    hit = _cache[key] = (compiled.string, processors, constants)
    return hit


def _params(compiled: _Compiled, values: Mapping[str, Any]) -> dict[str, Any]:
    _, processors, constants = compiled
    params = {**constants, **values} if constants else dict(values)
    for name, process in processors.items():
        v = params.get(name)
        if v is not None:
            params[name] = process(v)
    return params


def _driver(c: sa.Connection) -> Any:
    return c.connection.driver_connection


def write(c: sa.Connection, stmt: sa.Executable, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> int:
    """Run an INSERT / UPDATE / DELETE with one set of parameters, or many (executemany); returns
    the rows it changed (none for an empty list)."""
    if not isinstance(params, Mapping) and not params:
        return 0
    if c.dialect.name != 'sqlite':
        return int(c.execute(stmt, params).rowcount)  # type: ignore[arg-type]
    if isinstance(params, Mapping):
        compiled = _compiled(stmt, tuple(params))
        return int(_driver(c).execute(compiled[0], _params(compiled, params)).rowcount)
    compiled = _compiled(stmt, tuple(params[0]))
    return int(_driver(c).executemany(compiled[0], [_params(compiled, p) for p in params]).rowcount)


def inserted(
    c: sa.Connection, stmt: sa.Executable, params: Sequence[Mapping[str, Any]], column: sa.Column[Any]
) -> set[Any]:
    """Run an INSERT that skips rows already there (`ON CONFLICT DO NOTHING`) once per set of
    parameters; returns the `column` values of the rows it inserted. On SQLite each row's change
    count says so (no query of the keys first); elsewhere `present`, then one executemany."""
    key = column.name
    if not params:
        return set()
    if c.dialect.name != 'sqlite':
        known = present(c, column, list(dict.fromkeys(p[key] for p in params)))
        write(c, stmt, params)
        return {p[key] for p in params} - known
    new: set[Any] = set()
    compiled = _compiled(stmt, tuple(params[0]))
    cur = _driver(c).cursor()
    for p in params:
        if cur.execute(compiled[0], _params(compiled, p)).rowcount:
            new.add(p[key])
    return new


def driver_sql(c: sa.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Run SQL text in the driver's own parameter style (`?` on SQLite) once per row of values:
    on SQLite straight on the transaction's `sqlite3` connection (`Connection.exec_driver_sql`
    without SQLAlchemy's execution context, ~0.03 ms a call), elsewhere `exec_driver_sql`."""
    if not rows:
        return
    if c.dialect.name != 'sqlite':
        c.exec_driver_sql(sql, list(rows))
    elif len(rows) == 1:
        _driver(c).execute(sql, rows[0])
    else:
        _driver(c).executemany(sql, rows)


def first(c: sa.Connection, stmt: sa.Executable, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
    """The first row of a SELECT (a tuple of its columns), or None."""
    params = params or {}
    if c.dialect.name != 'sqlite':
        row = c.execute(stmt, params).first()
        return None if row is None else tuple(row)
    compiled = _compiled(stmt, tuple(params))
    row = _driver(c).execute(compiled[0], _params(compiled, params)).fetchone()
    return None if row is None else tuple(row)


def scalar(c: sa.Connection, stmt: sa.Executable, params: Mapping[str, Any] | None = None) -> Any:
    """The first column of a SELECT's first row (None when it has no row)."""
    row = first(c, stmt, params)
    return None if row is None else row[0]


def scalars(c: sa.Connection, stmt: sa.Executable, params: Mapping[str, Any] | None = None) -> list[Any]:
    """The first column of every row of a SELECT."""
    params = params or {}
    if c.dialect.name != 'sqlite':
        return list(c.execute(stmt, params).scalars())
    compiled = _compiled(stmt, tuple(params))
    return [r[0] for r in _driver(c).execute(compiled[0], _params(compiled, params))]


_present: dict[tuple[str, str], str] = {}


def present(c: sa.Connection, column: sa.Column[Any], values: Sequence[Any]) -> set[Any]:
    """Which of `values` the table of `column` holds in it (one indexed query)."""
    if not values:
        return set()
    if c.dialect.name != 'sqlite':
        return set(c.execute(sa.select(column).where(column.in_(list(values)))).scalars())
    key = (column.table.name, column.name)  # type: ignore[attr-defined]
    sql = _present.get(key)
    if sql is None:
        sql = _present[key] = f'SELECT "{key[1]}" FROM "{key[0]}" WHERE "{key[1]}" IN (SELECT value FROM json_each(?))'
    return {r[0] for r in _driver(c).execute(sql, (json.dumps(list(values)),))}


_readers: dict[int, tuple[list[str], list[Callable[[Any], Any] | None]]] = {}


def mappings(
    c: sa.Connection, stmt: sa.Select[*tuple[Any, ...]], params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every row of a SELECT as a dict of its columns (by key), values converted by their types."""
    params = params or {}
    if c.dialect.name != 'sqlite':
        return [dict(r) for r in c.execute(stmt, params).mappings()]
    compiled = _compiled(stmt, tuple(params))
    reader = _readers.get(id(stmt))
    if reader is None:
        cols = list(stmt.selected_columns)
        reader = _readers[id(stmt)] = (
            [str(col.key) for col in cols],
            [col.type.dialect_impl(_NAMED).result_processor(_NAMED, None) for col in cols],
        )
    names, processors = reader
    cur = _driver(c).execute(compiled[0], _params(compiled, params))
    if not any(processors):
        return [dict(zip(names, r, strict=True)) for r in cur]
    return [
        {n: (v if p is None or v is None else p(v)) for n, p, v in zip(names, processors, r, strict=True)} for r in cur
    ]
