"""The state store's one migration path: an older database opens and gets the columns, indexes and
version of the current schema, on SQLite and on Postgres; an up-to-date one costs one SELECT."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from proctor.exceptions import StateDirError
from proctor.state._schema import schema_version
from proctor.state._store import SCHEMA_VERSION, StateStore, add_missing_columns, upgrade_schema

# The ledger as the first release created it: no routing columns, no unique call key.
OLD_LEDGER = """CREATE TABLE proctor_ledger (
    id INTEGER PRIMARY KEY, run_id VARCHAR(64) NOT NULL, team VARCHAR(200) NOT NULL,
    project VARCHAR(200) NOT NULL, specialist VARCHAR(200) NOT NULL, agent_path VARCHAR(400) NOT NULL,
    model_id VARCHAR(200) NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    cost_usd FLOAT NOT NULL, created_at FLOAT NOT NULL)"""
OLD_ROW = (
    'INSERT INTO proctor_ledger (run_id, team, project, specialist, agent_path, model_id, input_tokens, '
    "output_tokens, cost_usd, created_at) VALUES ('r-old', 't', 'p', 's', 'supervisor', 'm', 10, 5, 0.25, 1.0)"
)


def make_old_database(url: str) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql(OLD_LEDGER if c.dialect.name == 'sqlite' else OLD_LEDGER.replace('id INTEGER', 'id SERIAL'))
        c.exec_driver_sql(OLD_ROW)
        c.exec_driver_sql('CREATE TABLE proctor_schema_version (version INTEGER NOT NULL)')
        c.exec_driver_sql('INSERT INTO proctor_schema_version (version) VALUES (1)')
    eng.dispose()


def assert_upgraded(store: StateStore) -> None:
    from proctor import Ledger
    from proctor.models._ledger import LedgerEntry

    insp = sa.inspect(store.engine)
    assert {'call_key', 'data_class', 'model_version'} <= {c['name'] for c in insp.get_columns('proctor_ledger')}
    assert 'ix_proctor_ledger_call_key' in {i['name'] for i in insp.get_indexes('proctor_ledger')}
    assert 'proctor_runs' in insp.get_table_names()  # tables the old database lacked are created
    with store.engine.connect() as c:
        assert c.execute(sa.select(schema_version.c.version)).scalars().all() == [SCHEMA_VERSION]
    # The old row is kept; new rows use the new columns, and the unique call key holds.
    led = Ledger(store)
    entry = LedgerEntry(
        run_id='r-new',
        team='t',
        project='p',
        specialist='s',
        agent_path='supervisor',
        model_id='m',
        input_tokens=1,
        output_tokens=1,
        cost_usd=0.5,
        created_at=time.time(),
        call_key='k1',
        data_class='internal',
        model_version='v1',
    )
    assert led.record(entry) is True and led.record(entry) is False
    rows = {(e.run_id, e.call_key, e.model_version) for e in led.entries()}
    assert rows == {('r-old', None, None), ('r-new', 'k1', 'v1')}


def test_an_old_sqlite_database_opens_with_the_new_columns_and_version(tmp_path):
    state = tmp_path / 'state'
    state.mkdir()
    make_old_database(f'sqlite:///{state / "proctor.db"}')
    store = StateStore(state)
    try:
        assert_upgraded(store)
    finally:
        store.dispose()


def test_an_up_to_date_database_is_not_inspected_again(tmp_path, monkeypatch):
    store = StateStore(tmp_path / 'state')
    store.migrate()
    store.dispose()  # forget it in this process, as a new process would

    def inspected(*args, **kwargs):
        raise AssertionError('the columns of an up-to-date database were inspected')

    monkeypatch.setattr('proctor.state._store.add_missing_columns', inspected)
    again = StateStore(tmp_path / 'state')
    try:
        with again.engine.connect() as c:
            assert c.execute(sa.select(schema_version.c.version)).scalars().all() == [SCHEMA_VERSION]
    finally:
        again.dispose()


def test_new_columns_get_their_default_and_a_required_column_without_one_is_refused(tmp_path):
    eng = sa.create_engine(f'sqlite:///{tmp_path / "x.db"}')
    old, new = sa.MetaData(), sa.MetaData()
    sa.Table('things', old, sa.Column('id', sa.Integer, primary_key=True))
    sa.Table(
        'things',
        new,
        sa.Column('id', sa.Integer, primary_key=True),
        sa.Column('note', sa.Text),
        sa.Column('tries', sa.Integer, nullable=False, default=0),
        sa.Column('state', sa.String(16), nullable=False, server_default='new'),
    )
    broken = sa.MetaData()
    sa.Table(
        'things', broken, sa.Column('id', sa.Integer, primary_key=True), sa.Column('owner', sa.Text, nullable=False)
    )
    old.create_all(eng)
    with eng.begin() as c:
        c.exec_driver_sql('INSERT INTO things (id) VALUES (1)')
        assert add_missing_columns(c, new) == ['things.note', 'things.tries', 'things.state']
        assert add_missing_columns(c, new) == []
        assert c.exec_driver_sql('SELECT id, note, tries, state FROM things').all() == [(1, None, 0, 'new')]
        with pytest.raises(
            StateDirError, match=r'cannot add column things\.owner .* must be nullable or have a default'
        ):
            add_missing_columns(c, broken)
    eng.dispose()


def test_upgrade_records_the_version_once(tmp_path):
    eng = sa.create_engine(f'sqlite:///{tmp_path / "y.db"}')
    md = sa.MetaData()
    schema_version.to_metadata(md)
    md.create_all(eng)
    with eng.begin() as c:
        assert upgrade_schema(c, md) == 0
        assert upgrade_schema(c, md) == SCHEMA_VERSION
        assert c.execute(sa.select(schema_version.c.version)).scalars().all() == [SCHEMA_VERSION]
    eng.dispose()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_old_postgres_database_opens_with_the_new_columns_and_version(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'examples' / 'scale_out'))
    from local_servers import LocalPostgres

    with LocalPostgres() as pg:
        url = pg.create_database(f't_{uuid.uuid4().hex[:12]}')
        make_old_database(sa.make_url(url).set(drivername='postgresql+psycopg').render_as_string(hide_password=False))
        store = StateStore(tmp_path / 'state', database_url=url)
        try:
            assert_upgraded(store)
        finally:
            store.dispose()
