"""`proctor.state._sql`: the hot path's statements, compiled once and run on SQLite's driver, store and
read exactly what SQLAlchemy's own execution does, in the caller's transaction; the write transaction
around them (`_writer.write_transaction`) and the flush that fills it lose nothing when they fail."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from proctor.state import _sql

meta = sa.MetaData()
items = sa.Table(
    'items',
    meta,
    sa.Column('id', sa.String, primary_key=True),
    sa.Column('n', sa.Integer, nullable=False),
    sa.Column('ok', sa.Boolean, nullable=False),
    sa.Column('cost', sa.Float),
)
_INSERT = items.insert()
_BUMP = items.update().where(items.c.id == sa.bindparam('key')).values(n=items.c.n + sa.bindparam('by'))
_TOP = sa.select(items.c.id, items.c.n).order_by(items.c.n.desc()).limit(1)
_COUNT = sa.select(sa.func.count()).select_from(items).where(items.c.ok == sa.bindparam('ok'))


@pytest.fixture
def engine(tmp_path):
    eng = sa.create_engine(f'sqlite:///{tmp_path / "t.db"}')
    meta.create_all(eng)
    yield eng
    eng.dispose()


def test_writes_and_reads_match_sqlalchemy_and_bind_processors_apply(engine):
    with engine.begin() as c:
        assert _sql.write(c, _INSERT, {'id': 'a', 'n': 1, 'ok': True, 'cost': 0.5}) == 1
        assert (
            _sql.write(
                c,
                _INSERT,
                [{'id': 'b', 'n': 5, 'ok': False, 'cost': None}, {'id': 'c', 'n': 3, 'ok': True, 'cost': 1.0}],
            )
            == 2
        )
        assert _sql.write(c, _BUMP, [{'key': 'a', 'by': 10}, {'key': 'zz', 'by': 1}]) == 1  # only 'a' exists
    with engine.connect() as c:
        assert [tuple(r) for r in c.execute(sa.select(items).order_by(items.c.id))] == [
            ('a', 11, True, 0.5),
            ('b', 5, False, None),
            ('c', 3, True, 1.0),
        ]
        assert _sql.first(c, _TOP) == ('a', 11)  # the LIMIT's constant went with the compiled SQL
        assert _sql.scalar(c, _COUNT, {'ok': True}) == 2 and _sql.scalar(c, _COUNT, {'ok': False}) == 1
        assert sorted(_sql.scalars(c, sa.select(items.c.id).where(items.c.n > sa.bindparam('m')), {'m': 4})) == [
            'a',
            'b',
        ]


def test_a_write_is_part_of_the_callers_transaction(engine):
    with pytest.raises(RuntimeError), engine.begin() as c:
        _sql.write(c, _INSERT, {'id': 'x', 'n': 1, 'ok': True, 'cost': None})
        raise RuntimeError('rolled back')
    with engine.connect() as c:
        assert _sql.scalars(c, sa.select(items.c.id)) == []  # rolled back with the transaction


def test_an_expanding_parameter_is_refused_by_name(engine):
    stmt = sa.select(items.c.id).where(items.c.id.in_(sa.bindparam('ids', expanding=True)))
    with engine.connect() as c, pytest.raises(ValueError, match='ids'):
        _sql.scalars(c, stmt, {'ids': ['a']})


_INSERT_NEW = sa.text('INSERT INTO items (id, n, ok) VALUES (:id, :n, :ok) ON CONFLICT (id) DO NOTHING')


def inserted_keys_are_the_new_ones(c: sa.Connection) -> None:
    """`_sql.inserted` on any database: the keys of the rows it added, none already there, a key
    twice in one batch added once; the rows already there keep their values. An empty batch
    writes nothing."""
    _sql.write(c, _INSERT, {'id': 'old', 'n': 1, 'ok': True, 'cost': None})
    rows = [{'id': k, 'n': n, 'ok': True} for n, k in enumerate(('old', 'a', "it's", 'a'), 10)]
    assert _sql.inserted(c, _INSERT_NEW, rows, items.c.id) == {'a', "it's"}
    assert _sql.inserted(c, _INSERT_NEW, rows, items.c.id) == set()  # all there now
    assert _sql.inserted(c, _INSERT_NEW, [], items.c.id) == set() and _sql.write(c, _INSERT, []) == 0
    assert dict(c.execute(sa.select(items.c.id, items.c.n)).all()) == {'old': 1, 'a': 11, "it's": 12}


def test_inserted_tells_which_rows_it_added(engine):
    with engine.begin() as c:
        inserted_keys_are_the_new_ones(c)


def test_present_tells_which_keys_a_column_holds(engine):
    with engine.begin() as c:
        _sql.write(c, _INSERT, [{'id': k, 'n': 1, 'ok': True, 'cost': None} for k in ('a', 'b', "it's")])
        assert _sql.present(c, items.c.id, ['a', "it's", 'nope', 'a']) == {'a', "it's"}
        assert _sql.present(c, items.c.id, []) == set()


def test_mappings_convert_values_by_column_type_as_sqlalchemy_does(engine):
    with engine.begin() as c:
        _sql.write(
            c, _INSERT, [{'id': 'a', 'n': 2, 'ok': True, 'cost': 0.25}, {'id': 'b', 'n': 1, 'ok': False, 'cost': None}]
        )
    q = sa.select(items).where(items.c.n >= sa.bindparam('m')).order_by(items.c.n)
    with engine.connect() as c:
        got = _sql.mappings(c, q, {'m': 1})
        assert got == [dict(r) for r in c.execute(q, {'m': 1}).mappings()]
        assert got == [{'id': 'b', 'n': 1, 'ok': False, 'cost': None}, {'id': 'a', 'n': 2, 'ok': True, 'cost': 0.25}]
        assert all(type(r['ok']) is bool for r in got)  # the driver gives 0/1: the Boolean's processor ran


def test_driver_sql_runs_in_the_callers_transaction_once_per_row(engine):
    sql = 'INSERT INTO items (id, n, ok, cost) VALUES (?, ?, ?, ?)'
    with pytest.raises(RuntimeError), engine.begin() as c:
        _sql.driver_sql(c, sql, [('x', 1, 1, None), ('y', 2, 0, 0.5)])
        raise RuntimeError('rolled back')
    with engine.begin() as c:
        _sql.driver_sql(c, sql, [('one', 7, 1, None)])
        _sql.driver_sql(c, sql, [])
    with engine.connect() as c:
        assert [tuple(r) for r in c.execute(sa.select(items))] == [('one', 7, True, None)]


@pytest.mark.parametrize('through', ['driver', 'sqlalchemy', 'both'])
def test_a_write_transaction_commits_or_rolls_back_every_statement_on_sqlite(tmp_path, through):
    """`write_transaction` begins and ends SQLite's transaction on the driver: statements run there
    (`_sql`) and through SQLAlchemy are committed together, or rolled back together."""
    from proctor.state._store import StateStore
    from proctor.state._writer import write_transaction

    store = StateStore(tmp_path / 'state')
    meta.create_all(store.engine)

    def put(c, key):
        if through in ('driver', 'both'):
            _sql.write(c, _INSERT, {'id': key + '-d', 'n': 1, 'ok': True, 'cost': None})
        if through in ('sqlalchemy', 'both'):
            c.execute(_INSERT, {'id': key + '-s', 'n': 1, 'ok': True, 'cost': None})

    with pytest.raises(RuntimeError), write_transaction(store) as c:
        put(c, 'lost')
        raise RuntimeError('rolled back')
    with write_transaction(store) as c:
        put(c, 'kept')
    with store.engine.connect() as c:
        ids = sorted(c.execute(sa.select(items.c.id)).scalars())
    assert ids == sorted({'driver': ['kept-d'], 'sqlalchemy': ['kept-s'], 'both': ['kept-d', 'kept-s']}[through])
    store.engine.dispose()


def test_a_buffer_that_fails_to_hand_over_its_items_loses_no_other_buffers_items(tmp_path):
    """A flush takes every buffer's items before it writes them: if one buffer fails as its items are
    taken, the items already taken from the others are put back and written by the next flush."""
    import collections
    import threading

    from proctor.state._store import StateStore
    from proctor.state._writer import BufferedWriter, Flusher

    store = StateStore(tmp_path / 'state')
    meta.create_all(store.engine)

    class Rows(BufferedWriter):
        def __init__(self, fail_once: bool = False) -> None:  # not on the process's flusher
            self.store, self._buf, self._failures, self.fail_once = store, collections.deque(), 0, fail_once

        def take(self, *, checkpoint: bool = False) -> list:
            if self.fail_once:
                self.fail_once = False
                raise RuntimeError('dictionary changed size during iteration')
            return super().take(checkpoint=checkpoint)

        def write_batch(self, conn, items) -> None:
            _sql.write(conn, _INSERT, [{'id': i, 'n': 1, 'ok': True, 'cost': None} for i in items])

    good, bad = Rows(), Rows(fail_once=True)
    good._buf.extend(['a', 'b'])
    bad._buf.append('c')
    flusher = Flusher()
    flusher._store_locks[store.url] = threading.Lock()
    flusher.buffers_of = lambda s: [good, bad]  # the good buffer is taken first
    with pytest.raises(RuntimeError):
        flusher.flush_store(store)
    assert good.pending == 2  # put back, not lost
    flusher.flush_store(store)
    with store.engine.connect() as c:
        assert sorted(c.execute(sa.select(items.c.id)).scalars()) == ['a', 'b', 'c']
    store.engine.dispose()
