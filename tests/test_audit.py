"""The audit log: one hash-chained record per model call and per approval decision; `verify` names the
first record that was altered, removed or reordered; appends are idempotent and concurrency-safe."""

from __future__ import annotations

import hashlib
import threading

import pytest
import sqlalchemy as sa

from proctor import Specialist, Supervisor, Team
from proctor.cli._app import main as cli
from proctor.state._audit import canonical_json
from proctor.state._schema import audit
from proctor.state._store import StateStore
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_results
from proctor.tracing import append_audit, audit_entries, audit_head, flush_store, verify_audit


def build_team(name: str = 'audited') -> Team:
    def supervisor(messages):
        results = tool_results(messages)
        return [delegate('research', 'find it', call_id='c1')] if not results else text(f'done: {results[0]}')

    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='sup-model')),
        [
            Specialist(
                'research',
                'Research.',
                model=ScriptedModel(lambda m: text(f'found {last_user_prompt(m)}'), name='res-model'),
            )
        ],
        name=name,
        durable=False,
    )


@pytest.fixture(autouse=True)
def _cli_keeps_logging_alone(monkeypatch):
    # The CLI points structlog at the current stderr; under pytest that is a capture file closed after
    # the test, and loggers cached meanwhile would write to it in later tests.
    monkeypatch.setattr('proctor.cli._app._configure_logging', lambda log_json: None)


def cli_code(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        cli(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def store(state_dir) -> StateStore:
    """A store whose chain holds 3 model calls of one run, then one approval decision."""
    team = build_team()
    team.run_sync('find the api')
    append_audit(
        team.store,
        'approval_decision',
        {
            'approval_id': 'ap1',
            'tool': 'write_file',
            'decider': 'ana',
            'role': 'operator',
            'decision': 'approved',
            'reason': 'looks fine',
        },
        run_id=team.list_runs()[0].run_id,
        key='approval:ap1',
    )
    return team.store


def test_every_model_call_is_audited(store):
    entries = audit_entries(store)
    assert [e.kind for e in entries] == ['model_call'] * 3 + ['approval_decision']
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    calls = [e.record for e in entries[:3]]
    assert sorted(r['agent_path'] for r in calls) == ['supervisor', 'supervisor', 'supervisor>research']
    first = next(r for r in calls if r['agent_path'] == 'supervisor>research')
    assert {k: first[k] for k in ('model_id', 'requested_model', 'returned_model', 'provider', 'specialist')} == {
        'model_id': 'res-model',
        'requested_model': 'res-model',
        'returned_model': 'res-model',
        'provider': 'function',
        'specialist': 'research',
    }
    assert first['input_tokens'] > 0 and first['output_tokens'] > 0 and first['duration_ms'] >= 0
    assert len(first['input_hash']) == 64 and len(first['output_hash']) == 64 and first['started_at'] > 0
    assert first['run_id'] == entries[0].run_id and first['call_key'].endswith('#model:1')
    assert entries[3].record['decider'] == 'ana' and entries[3].record['role'] == 'operator'
    assert entries[0].prev_hash == '0' * 64 and all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    v = verify_audit(store)
    assert v.ok and v.checked == 4 and (v.head_seq, v.head_hash) == audit_head(store)


def test_identical_calls_have_identical_input_and_output_hashes(state_dir):
    team = build_team('audited-twice')
    team.run_sync('find the api')
    team.run_sync('find the api')
    by_run: dict[str, list[tuple[str, str]]] = {}
    for e in audit_entries(team.store):
        by_run.setdefault(e.run_id, []).append((e.record['input_hash'], e.record['output_hash']))
    a, b = by_run.values()
    assert sorted(a) == sorted(b)  # timestamps and run ids are not part of what is hashed


def _mutate(store: StateStore, how: str) -> None:
    with store.engine.begin() as c:
        if how == 'altered':
            row = c.execute(sa.select(audit.c.record).where(audit.c.seq == 2)).scalar_one()
            c.execute(
                audit.update().where(audit.c.seq == 2).values(record=row.replace('"input_tokens":', '"input_tokens":1'))
            )
        elif how == 'removed':
            c.execute(audit.delete().where(audit.c.seq == 2))
        elif how == 'reordered':  # swap records 2 and 3, renumbering them to hide it
            c.execute(audit.update().where(audit.c.seq == 2).values(seq=-2))
            c.execute(audit.update().where(audit.c.seq == 3).values(seq=2))
            c.execute(audit.update().where(audit.c.seq == -2).values(seq=3))
        elif how == 'rehashed':  # altered, with its own hash recomputed (the documented formula): the next one breaks
            r = c.execute(sa.select(audit).where(audit.c.seq == 2)).one()
            record = r.record.replace('"input_tokens":', '"input_tokens":1')
            body = canonical_json(
                {
                    'seq': r.seq,
                    'kind': r.kind,
                    'run_id': r.run_id,
                    'idem_key': r.idem_key,
                    'created_at': r.created_at,
                    'record': record,
                }
            )
            digest = hashlib.sha256((r.prev_hash + body).encode()).hexdigest()
            c.execute(audit.update().where(audit.c.seq == 2).values(record=record, hash=digest))


@pytest.mark.parametrize(
    'how,bad,words',
    [
        ('altered', 2, 'the record was altered'),
        ('removed', 2, 'record 2 is missing'),
        ('reordered', 2, 'does not chain to record 1'),
        ('rehashed', 3, 'does not chain to record 2'),
    ],
)
def test_verify_names_the_first_bad_record(store, capsys, how, bad, words):
    assert cli_code(capsys, 'audit', 'verify')[0] == 0
    _mutate(store, how)
    v = verify_audit(store)
    assert not v.ok and v.bad_seq == bad and words in v.problem
    code, out, err = cli_code(capsys, 'audit', 'verify')
    assert code == 1 and err.startswith(f'error: audit chain broken at record {bad}: ') and words in err
    assert len(err.strip().splitlines()) == 1


def test_verify_with_a_kept_head_detects_a_cut_tail(store, capsys):
    seq, head = audit_head(store)
    with store.engine.begin() as c:
        c.execute(audit.delete().where(audit.c.seq == seq))
    assert verify_audit(store).ok  # a cut tail still chains...
    code, _, err = cli_code(capsys, 'audit', 'verify', '--expect-head', head)
    assert code == 1 and 'records were removed from the end' in err  # ...but not to the head kept elsewhere


def test_appends_are_idempotent_and_safe_from_many_threads(state_dir):
    store = StateStore(state_dir)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(25):
                append_audit(store, 'note', {'thread': n, 'i': i}, key=f'note:{n}:{i}')
                if i % 5 == 0:  # a recovered run's hooks run again: the same key adds nothing
                    append_audit(store, 'note', {'thread': n, 'i': i}, key=f'note:{n}:{i}')
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = audit_entries(store)
    assert [e.seq for e in entries] == list(range(1, 201))
    assert len({e.idem_key for e in entries}) == 200
    assert verify_audit(store).ok


@pytest.mark.anyio
async def test_replayed_hooks_of_a_recovered_run_do_not_append_twice(state_dir):
    """Recovery re-runs `after_model_call` for recorded steps with the same call key."""
    from proctor.orchestrator import ModelCall, RunDeps
    from proctor.tracing import AuditObserver

    store = StateStore(state_dir)
    obs = AuditObserver(store)
    deps = RunDeps(
        run_id='r1', team='t', project='p', data_class='internal', agent_path='supervisor', specialist='supervisor'
    )
    call = ModelCall(
        deps=deps, key='r1#model:1', model_id='m', model_name='m', system='function', messages=[], model_settings=None
    )
    for _ in range(2):
        await obs.after_model_call(call, text('hi'))
        flush_store(store)
    assert [e.idem_key for e in audit_entries(store)] == ['model:r1#model:1']


def test_audit_list_cli(store, capsys, monkeypatch):
    monkeypatch.setenv('COLUMNS', '200')
    code, out, _ = cli_code(capsys, 'audit', 'list')
    assert code == 0 and 'model_call' in out and 'approval_decision' in out
    code, out, _ = cli_code(capsys, 'audit', 'head')
    assert code == 0 and out.split()[0] == '4'


def test_a_routed_call_is_audited_with_the_served_model_its_version_and_cost(state_dir):
    from proctor import ModelRouter

    def boss(messages):
        results = tool_results(messages)
        return [delegate('analyst', 'size it', call_id='c1')] if not results else text(results[0])

    models = {
        'cheap': {
            'model': ScriptedModel(lambda m: text('small'), name='cheap-llm'),
            'version': '2024-07-18',
            'usd_per_m_input': 0.15,
            'usd_per_m_output': 0.6,
            'data_classes': ['internal'],
        },
        'boss': {
            'model': ScriptedModel(boss, name='boss-llm'),
            'usd_per_m_input': 1,
            'usd_per_m_output': 2,
            'data_classes': ['internal'],
        },
    }
    router = ModelRouter(
        models, {'specialists': {'supervisor': {'preferred': 'boss'}, 'analyst': {'preferred': 'cheap'}}}
    )
    team = Team(Supervisor(), [Specialist('analyst', 'Analyse.')], router=router, name='audited-routed', durable=False)
    result = team.run_sync('go')
    [call] = [e.record for e in audit_entries(team.store) if e.record['agent_path'] == 'supervisor>analyst']
    assert (call['model_id'], call['model_version'], call['returned_model']) == ('cheap', '2024-07-18', 'cheap-llm')
    assert call['requested_model_id'] == result.delegations[0].model_id  # what the route asked for
    assert call['cost_usd'] == pytest.approx((call['input_tokens'] * 0.15 + call['output_tokens'] * 0.6) / 1e6)
    total = sum(e.record['cost_usd'] for e in audit_entries(team.store, run_id=result.run_id))
    assert total == pytest.approx(result.cost_usd)
