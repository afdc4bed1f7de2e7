"""The cost ledger: attribution through delegation, usage queries, idempotency, `proctor usage`."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from proctor import Ledger, ModelRouter, Specialist, Supervisor, Team
from proctor.cli._usage import parse_since
from proctor.exceptions import UserError
from proctor.orchestrator import LedgerEntry
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_results

pytestmark = pytest.mark.anyio
ALL = ['public', 'internal', 'confidential', 'restricted']


def build(name: str = 'ledgered') -> Team:
    boss = ScriptedModel(
        lambda m: text('done') if tool_results(m) else [delegate('research', 'look'), delegate('coding', 'write')]
    )
    models = {
        'boss': {'model': boss, 'usd_per_m_input': 2, 'usd_per_m_output': 8, 'version': 'b-1', 'data_classes': ALL},
        'small': {
            'model': ScriptedModel(lambda m: text('small ' + last_user_prompt(m))),
            'usd_per_m_input': 0.5,
            'usd_per_m_output': 1,
            'data_classes': ALL,
        },
        'big': {
            'model': ScriptedModel(lambda m: text('big ' + last_user_prompt(m))),
            'usd_per_m_input': 5,
            'usd_per_m_output': 20,
            'version': '2025-01',
            'data_classes': ALL,
        },
    }
    policy = {
        'specialists': {
            'supervisor': {'preferred': 'boss'},
            'research': {'preferred': 'small'},
            'coding': {'preferred': 'big'},
        }
    }
    return Team(
        Supervisor(),
        [Specialist('research', 'Research.'), Specialist('coding', 'Code.')],
        router=ModelRouter(models, policy),
        durable=False,
        name=name,
    )


async def test_sub_agent_spend_counts_toward_its_run_team_and_project(state_dir):
    team = build()
    result = await team.run('ship it', project='apollo')
    rows = Ledger().entries(run_id=result.run_id)
    assert sorted((r.agent_path, r.model_id) for r in rows) == [
        ('supervisor', 'boss'),
        ('supervisor', 'boss'),
        ('supervisor>coding', 'big'),
        ('supervisor>research', 'small'),
    ]
    assert {(r.team, r.project, r.data_class) for r in rows} == {('ledgered', 'apollo', 'internal')}
    assert {r.model_version for r in rows if r.model_id != 'small'} == {'b-1', '2025-01'}
    assert all(r.cost_usd > 0 and r.input_tokens > 0 and r.call_key for r in rows)
    # The run's recorded cost is the ledger's: every delegation's spend rolls up into it.
    assert result.cost_usd == pytest.approx(sum(r.cost_usd for r in rows))
    coding = next(d for d in result.delegations if d.specialist == 'coding')
    assert coding.cost_usd == pytest.approx(sum(r.cost_usd for r in rows if r.specialist == 'coding'))
    assert Ledger().total(project='apollo').cost_usd == pytest.approx(result.cost_usd)


async def test_usage_groups_by_dimension_and_filters_by_time(state_dir):
    team = build()
    await team.run('one', project='apollo')
    await team.run('two', project='gemini')
    led = Ledger()
    by_model = {r.key: r for r in led.usage('model')}
    assert set(by_model) == {'boss', 'small', 'big'} and by_model['boss'].calls == 4 and by_model['big'].calls == 2
    assert {r.key for r in led.usage('project')} == {'apollo', 'gemini'}
    assert {r.key: r.calls for r in led.usage('specialist')} == {'supervisor': 4, 'coding': 2, 'research': 2}
    costs = [r.cost_usd for r in led.usage('model')]
    assert costs == sorted(costs, reverse=True)  # most expensive first
    assert led.usage('team', since=time.time() + 60) == []
    assert led.total(project='gemini').calls == 4
    with pytest.raises(UserError, match="cannot group usage by 'colour'"):
        led.usage('colour')  # type: ignore[arg-type]


def test_record_is_idempotent_on_the_call_key(state_dir):
    led = Ledger()
    entry = LedgerEntry(
        run_id='r',
        team='t',
        project='p',
        specialist='s',
        agent_path='supervisor',
        model_id='m',
        input_tokens=10,
        output_tokens=2,
        cost_usd=0.5,
        created_at=time.time(),
        call_key='r#model:1',
    )
    attempts = [
        {'seq': 0, 'model_id': 'x', 'tier': 0, 'status': 'failed', 'error': 'ModelHTTPError: 503', 'elapsed_ms': 1.0},
        {'seq': 1, 'model_id': 'm', 'tier': 0, 'status': 'ok', 'error': None, 'elapsed_ms': 2.0},
    ]
    assert led.record(entry, attempts) is True
    assert led.record(entry, attempts) is False
    assert len(led.entries(run_id='r')) == 1
    assert [(a['model_id'], a['status']) for a in led.attempts('r')] == [('x', 'failed'), ('m', 'ok')]


def test_an_old_database_gets_the_new_ledger_columns(tmp_path):
    db = tmp_path / 'old'
    db.mkdir()
    eng = sa.create_engine(f'sqlite:///{db / "proctor.db"}')
    with eng.begin() as c:
        c.exec_driver_sql(
            'CREATE TABLE proctor_ledger (id INTEGER PRIMARY KEY, run_id VARCHAR(64) NOT NULL, team VARCHAR(200) '
            'NOT NULL, project VARCHAR(200) NOT NULL, specialist VARCHAR(200) NOT NULL, agent_path VARCHAR(400) '
            'NOT NULL, model_id VARCHAR(200) NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER '
            'NOT NULL, cost_usd FLOAT NOT NULL, created_at FLOAT NOT NULL)'
        )
        c.exec_driver_sql("INSERT INTO proctor_ledger VALUES (1, 'old', 't', 'p', 's', 'a', 'm', 1, 1, 0.25, 0)")
    eng.dispose()
    led = Ledger(db)
    assert led.total().cost_usd == 0.25
    led.record(LedgerEntry('r', 't', 'p', 's', 'a', 'm', 1, 1, 0.5, time.time(), call_key='k'))
    assert led.total().cost_usd == 0.75


def test_parse_since():
    now = 1_000_000.0
    assert parse_since('24h', now=now) == now - 86400
    assert parse_since('90m', now=now) == now - 5400
    assert parse_since('2w', now=now) == now - 2 * 604800
    assert parse_since('2025-06-01T00:00:00+00:00') == 1748736000.0
    with pytest.raises(UserError, match=r"--since 'yesterday': use a duration like 24h"):
        parse_since('yesterday')


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    from proctor.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_usage_cli(state_dir, capsys):
    team = build()
    result = await team.run('ship it', project='apollo')
    code, out, err = run_cli(capsys, 'usage', '--by', 'specialist', '--json')
    assert code == 0, err
    doc = json.loads(out)
    assert {r['key']: r['calls'] for r in doc['rows']} == {'supervisor': 2, 'coding': 1, 'research': 1}
    assert doc['total']['cost_usd'] == pytest.approx(result.cost_usd)
    code, out, err = run_cli(capsys, 'usage', '--since', '1h')
    assert code == 0 and 'usage by model since' in out and 'big' in out and 'total' in out
    code, out, err = run_cli(capsys, 'usage', '--by', 'colour')
    assert (code, err.strip()) == (1, "error: --by 'colour': one of team, project, specialist, model")
    code, out, err = run_cli(capsys, 'usage', '--since', 'soon')
    assert code == 1 and err.startswith("error: --since 'soon'")
    code, out, err = run_cli(capsys, 'models', 'attempts', result.run_id, '--json')
    assert code == 0, err
    assert [a['model_id'] for a in json.loads(out)['attempts']].count('boss') == 2


async def test_a_team_without_a_router_still_books_its_calls(state_dir, capsys):
    """Every run's model calls reach the ledger (unpriced without a registry), so `proctor usage` after
    the demo counts its tokens instead of showing nothing."""
    boss = ScriptedModel(lambda m: text('done') if tool_results(m) else [delegate('research', 'look')])
    team = Team(
        Supervisor(model=boss),
        [Specialist('research', 'Research.', model=ScriptedModel(['found']))],
        durable=False,
        name='plain',
    )
    result = await team.run('look around', project='p')
    rows = Ledger().entries(run_id=result.run_id)
    assert sorted(r.agent_path for r in rows) == ['supervisor', 'supervisor', 'supervisor>research']
    assert sum(r.input_tokens for r in rows) == result.usage.input_tokens
    assert sum(r.output_tokens for r in rows) == result.usage.output_tokens
    assert {r.cost_usd for r in rows} == {0.0}
    code, out, err = run_cli(capsys, 'usage', '--by', 'specialist', '--run', result.run_id, '--json')
    assert code == 0, err
    doc = json.loads(out)
    assert {r['key']: r['calls'] for r in doc['rows']} == {'supervisor': 2, 'research': 1}
    assert doc['total']['input_tokens'] == result.usage.input_tokens
