"""Budgets: reserve before the call, settle after, stop past the limit, degrade near it, safe under concurrency."""

from __future__ import annotations

import anyio
import pytest
import sqlalchemy as sa

from proctor import Budget, BudgetExceeded, Ledger, ModelRegistry, ModelRouter, Specialist, Supervisor, Team
from proctor.exceptions import ProviderError
from proctor.models._budget import BudgetGuard
from proctor.orchestrator import ModelCall, RunDeps, budget_status
from proctor.state._schema import budget_reservations
from proctor.state._store import StateStore
from proctor.testing import ScriptedModel, delegate, fail, last_user_prompt, text, tool_results

pytestmark = pytest.mark.anyio
ALL = ['public', 'internal', 'confidential', 'restricted']


def boss() -> ScriptedModel:
    return ScriptedModel(
        lambda m: text('done: ' + tool_results(m)[0]) if tool_results(m) else [delegate('worker', 'do it')], name='boss'
    )


def worker(name: str = 'worker', error: Exception | None = None) -> ScriptedModel:
    def answer(messages):
        if error is not None:
            raise error
        return text(f'{name}: {last_user_prompt(messages)}')

    return ScriptedModel(answer, name=name)


def router(budgets, *, models=None, policy=None) -> ModelRouter:
    reg = {
        'boss': {
            'model': boss(),
            'usd_per_m_input': 10,
            'usd_per_m_output': 10,
            'max_output_tokens': 50,
            'data_classes': ALL,
        },
        'pricey': {
            'model': worker('pricey'),
            'usd_per_m_input': 10,
            'usd_per_m_output': 10,
            'max_output_tokens': 50,
            'data_classes': ALL,
        },
        'cheap': {
            'model': worker('cheap'),
            'usd_per_m_input': 1,
            'usd_per_m_output': 1,
            'max_output_tokens': 50,
            'data_classes': ALL,
        },
    }
    reg.update(models or {})
    pol = policy or {
        'specialists': {'supervisor': {'preferred': 'boss'}, 'worker': {'preferred': 'pricey', 'fallback': ['cheap']}}
    }
    return ModelRouter(ModelRegistry(reg), pol, budgets=budgets)


def team_with(r: ModelRouter, name: str = 'budgeted') -> Team:
    return Team(Supervisor(), [Specialist('worker', 'Work.')], router=r, durable=False, name=name)


def scope(store: StateStore, name: str) -> dict:
    [row] = [b for b in budget_status(store) if b['scope'] == name]
    return row


async def test_reserve_then_settle_matches_the_ledger(state_dir):
    team = team_with(router([Budget('project', 'p', usd=1.0), Budget('run', tokens=100_000)]))
    result = await team.run('go', project='p')
    assert result.output == 'done: pricey: do it'
    spent = sum(e.cost_usd for e in Ledger().entries(project='p'))
    assert result.cost_usd == pytest.approx(spent)
    project = scope(team.store, 'project:p')
    assert project['spent_usd'] == pytest.approx(spent) and project['reserved_usd'] == 0
    assert (
        scope(team.store, f'run:{result.run_id}')['spent_tokens']
        == result.usage.input_tokens + result.usage.output_tokens
    )
    with team.store.engine.connect() as c:
        assert {r[0] for r in c.execute(sa.select(budget_reservations.c.status))} == {'settled'}


async def test_past_the_limit_the_run_stops_naming_budget_limit_and_spend(state_dir):
    team = team_with(router([Budget('project', 'p', usd=0.008)]))
    first = await team.run('go', project='p')  # ~0.0011 spent; a call reserves up to ~0.0035
    with pytest.raises(BudgetExceeded) as info:
        for _ in range(8):
            await team.run('go again', project='p')
    err = info.value
    assert (err.budget, err.limit, err.unit) == ('project:p', 0.008, 'usd')
    assert first.cost_usd < err.spent <= 0.008
    assert str(err).startswith(f"budget 'project:p' exceeded: limit 0.008 usd, spent {err.spent:g} usd (")
    [last, *_] = team.list_runs(limit=10)
    assert last.status == 'failed' and 'BudgetExceeded' in (last.error or '')
    assert scope(team.store, 'project:p')['reserved_usd'] == pytest.approx(0, abs=1e-12)  # nothing left held
    assert scope(team.store, 'project:p')['spent_usd'] <= 0.008
    other = await team.run('go', project='q')  # other projects are not affected
    assert other.status == 'succeeded'


async def test_a_failed_call_releases_its_reservation(state_dir):
    r = router(
        [Budget('team', '*', usd=1.0)], models={'pricey': {'model': worker('pricey', fail(400)), 'data_classes': ALL}}
    )
    team = team_with(r, name='t400')
    with pytest.raises(ProviderError, match='pricey: HTTP 400'):
        await team.run('go', project='p')
    row = scope(team.store, 'team:t400')
    assert row['reserved_usd'] == pytest.approx(0, abs=1e-12) and row['spent_usd'] > 0  # the supervisor's call
    with team.store.engine.connect() as c:
        statuses = sorted(r[0] for r in c.execute(sa.select(budget_reservations.c.status)))
    assert statuses == ['released', 'settled']


async def test_hooks_are_idempotent_on_the_call_key(state_dir):
    from pydantic_ai.messages import ModelResponse, TextPart
    from pydantic_ai.usage import RequestUsage

    store = StateStore(state_dir)
    reg = ModelRegistry(
        {
            'm': {
                'model': 'test',
                'usd_per_m_input': 1000,
                'usd_per_m_output': 1000,
                'max_output_tokens': 10,
                'data_classes': ALL,
            }
        }
    )
    guard = BudgetGuard([Budget('project', 'p', usd=1.0)], registry=reg, store=store)
    deps = RunDeps(
        run_id='r1', team='t', project='p', data_class='internal', agent_path='supervisor', specialist='supervisor'
    )
    call = ModelCall(
        deps=deps, key='r1#model:1', model_id='m', model_name='m', system='', messages=[], model_settings=None
    )
    response = ModelResponse(parts=[TextPart('x')], usage=RequestUsage(input_tokens=100, output_tokens=5))
    for _ in range(2):  # a recovered run re-runs both hooks for a recorded step
        await guard.before_model_call(call)
        await guard.after_model_call(call, response)
    row = scope(store, 'project:p')
    assert row['spent_usd'] == pytest.approx(0.105) and row['reserved_usd'] == pytest.approx(0, abs=1e-12)
    assert row['spent_tokens'] == 105


async def test_near_the_limit_the_router_degrades_to_a_cheaper_approved_model(state_dir):
    policy = {
        'degrade_at': 0.08,
        'specialists': {'supervisor': {'preferred': 'boss'}, 'worker': {'preferred': 'pricey', 'fallback': ['cheap']}},
    }
    team = team_with(router([Budget('project', 'p', usd=0.01)], policy=policy), name='degrade')
    first = await team.run('go', project='p')
    assert first.delegations[0].model_id == 'pricey'
    assert scope(team.store, 'project:p')['fraction'] >= 0.08
    second = await team.run('go', project='p')
    [d] = second.delegations
    assert d.model_id == 'cheap' and second.output == 'done: cheap: do it'
    assert 'degraded to the cheapest approved model (budget project:p at' in d.route_reason


async def test_a_used_up_model_budget_routes_to_the_next_model(state_dir):
    team = team_with(router([Budget('model', 'pricey', usd=0.0001)]), name='modelcap')
    first = await team.run('go', project='p')
    assert first.output == 'done: cheap: do it'  # pricey cannot take even one call: the next approved model serves
    worker_attempts = [
        (a['model_id'], a['status'], a['error']) for a in Ledger().attempts(first.run_id) if a['specialist'] == 'worker'
    ]
    assert worker_attempts == [('pricey', 'skipped', 'model budget model:pricey used up'), ('cheap', 'ok', None)]
    assert [e.model_id for e in Ledger().entries(run_id=first.run_id, specialist='worker')] == ['cheap']
    second = await team.run('go', project='p')
    [d] = second.delegations
    assert d.model_id == 'cheap'  # now the router knows, and says so
    assert 'pricey (model budget model:pricey used up)' in d.route_reason


async def test_100_concurrent_runs_never_overspend_by_more_than_one_reservation(state_dir):
    limit = 0.05
    team = team_with(router([Budget('project', 'shared', usd=limit)]), name='crowd')
    ok: list[float] = []
    refused: list[BudgetExceeded] = []

    async def one(i: int) -> None:
        try:
            ok.append((await team.run(f'job {i}', project='shared')).cost_usd)
        except BudgetExceeded as e:
            refused.append(e)

    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(one, i)
    assert len(ok) + len(refused) == 100
    assert refused  # the limit bit ...
    total = sum(e.cost_usd for e in Ledger().entries(project='shared'))
    with team.store.engine.connect() as c:
        biggest = c.execute(sa.select(sa.func.max(budget_reservations.c.usd))).scalar_one()
    assert limit / 2 < total <= limit + biggest  # ... after real spending, and never past limit + one reservation
    row = scope(team.store, 'project:shared')
    assert row['spent_usd'] == pytest.approx(total) and row['reserved_usd'] == pytest.approx(0, abs=1e-9)
    assert all(e.budget == 'project:shared' and e.limit == limit for e in refused)


def test_reservations_from_many_connections_at_once_never_pass_the_limit(state_dir):
    """The SQL alone keeps the limit: 100 threads (each its own connection, like separate processes)."""
    import threading

    from proctor.models._budget import BudgetBook

    book = BudgetBook(StateStore(state_dir))
    budget = Budget('project', 'p', usd=1.0)
    start, admitted, lock = threading.Barrier(100), [], threading.Lock()

    def call(i: int) -> None:
        deps = RunDeps(run_id=f'r{i}', team='t', project='p', data_class='internal', agent_path='a', specialist='s')
        entries = [('project:p', budget, 'p')]
        start.wait()
        got = book.reserve(f'r{i}#model:1', deps, entries, 0.03, 10)
        if isinstance(got, dict):
            with lock:
                admitted.append(i)
            book.settle(f'r{i}#model:1', 0.02, 5, entries, deps)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = scope(book.store, 'project:p')
    assert row['reserved_usd'] == pytest.approx(0, abs=1e-9)
    assert row['spent_usd'] == pytest.approx(0.02 * len(admitted))
    assert row['spent_usd'] <= 1.0 and len(admitted) >= 33  # 0.03 reserved each: at least 33 fit at once
