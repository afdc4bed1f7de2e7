"""Evaluation results in Postgres (scale-out): recorded there with the model's version, read by the router
and by `proctor eval report`."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from test_eval import TRIAGE_SUITE, make_router, route, write

from proctor.cli import main
from proctor.models._eval import Evaluator
from proctor.models._eval_store import EvalRecords
from proctor.models._eval_suite import load_suite
from proctor.state._store import StateStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'examples' / 'scale_out'))
from local_servers import LocalPostgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope='module')
def postgres():
    with LocalPostgres() as pg:
        yield pg


def test_results_live_in_postgres_and_drive_routing(postgres, tmp_path, state_dir, capsys, monkeypatch):
    url = postgres.create_database(f'e_{uuid.uuid4().hex[:12]}')
    store = StateStore(tmp_path / 'pg-state', database_url=url)
    try:
        router = make_router({})
        report = Evaluator(router, store).run_sync(load_suite(write(tmp_path, TRIAGE_SUITE)), concurrency=4)
        latest = EvalRecords(store).latest('triage')
        assert {m: (r.pass_rate, r.model_version) for m, r in latest.items()} == {
            'cheap': (1.0, 'v1'),
            'mid': (1.0, 'v1'),
            'strong': (1.0, 'v1'),
        }
        r = route(router, store)
        assert r.model_id == 'cheap' and report.run_id in r.reason
        monkeypatch.setenv('PROCTOR_DATABASE_URL', url)  # (the --database-url flag would set it for the process)
        main(['eval', 'report', 'triage', '--json'])
        (suite,) = json.loads(capsys.readouterr().out)['suites']
        assert suite['runs'][0]['run_id'] == report.run_id and suite['runs'][0]['status'] == 'complete'
        assert {x['model_id'] for x in suite['latest']} == {'cheap', 'mid', 'strong'}
    finally:
        store.dispose()
