"""Routing by capability, cost tier, latency and data class; fallback on provider failure; escalation."""

from __future__ import annotations

import random
import threading
from typing import Literal

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic_ai.exceptions import ModelTimeoutError

from proctor import Ledger, ModelRegistry, ModelRouter, NoRouteError, Specialist, Supervisor, Team, UnknownModelError
from proctor.exceptions import ConfigError, ProviderError
from proctor.testing import ScriptedModel, delegate, fail, final_output, last_user_prompt, text, tool_results

pytestmark = pytest.mark.anyio
CLASSES = ('public', 'internal', 'confidential', 'restricted')


def worker(name: str) -> ScriptedModel:
    return ScriptedModel(lambda m: text(f'{name}:{last_user_prompt(m)}'), name=name)


def supervisor_model(*specialists: str) -> ScriptedModel:
    def answer(messages):
        results = tool_results(messages)
        if not results:
            return [delegate(s, f'task for {s}') for s in specialists]
        return text(' | '.join(sorted(results)))

    return ScriptedModel(answer, name='supervisor-llm')


def tiered_router(**overrides) -> ModelRouter:
    models = {
        'mini': {
            'model': worker('mini'),
            'usd_per_m_input': 0.15,
            'usd_per_m_output': 0.6,
            'latency': 'fast',
            'capabilities': ['cheap', 'classification'],
            'data_classes': ['public', 'internal'],
            'region': 'us',
        },
        'sonnet': {
            'model': worker('sonnet'),
            'usd_per_m_input': 3,
            'usd_per_m_output': 15,
            'latency': 'medium',
            'capabilities': ['reasoning', 'coding'],
            'data_classes': ['public', 'internal'],
            'region': 'us',
        },
        'opus': {
            'model': worker('opus'),
            'usd_per_m_input': 15,
            'usd_per_m_output': 75,
            'latency': 'slow',
            'capabilities': ['reasoning', 'coding'],
            'data_classes': ['public', 'internal', 'confidential'],
            'region': 'us',
        },
        'onprem': {
            'model': worker('onprem'),
            'usd_per_m_input': 0.5,
            'usd_per_m_output': 1,
            'latency': 'medium',
            'capabilities': ['reasoning', 'classification'],
            'data_classes': list(CLASSES),
            'region': 'eu',
        },
        'boss': {
            'model': supervisor_model('classifier', 'analyst'),
            'capabilities': ['reasoning'],
            'data_classes': list(CLASSES),
            'region': 'eu',
        },
    }
    models.update(overrides.pop('models', {}))
    policy = {
        'specialists': {
            'supervisor': {'preferred': 'boss'},
            'classifier': {'preferred': 'mini', 'fallback': ['onprem', 'sonnet'], 'max_cost_tier': 'low'},
            'analyst': {'preferred': 'sonnet', 'fallback': ['opus', 'onprem'], 'requires': ['reasoning']},
        },
        'rules': [{'data_class': ['confidential', 'restricted'], 'regions': ['eu']}],
    }
    policy.update(overrides)
    return ModelRouter(models, policy)


def team_of(router: ModelRouter, *names: str, durable: bool = False, name: str = 'routed', **kw) -> Team:
    return Team(
        Supervisor(),
        [Specialist(n, f'You are the {n}.') for n in names],
        router=router,
        durable=durable,
        name=name,
        **kw,
    )


def test_cost_tiers_capabilities_and_data_class_decide_the_plan():
    router = tiered_router()
    classifier, analyst = Specialist('classifier', 'Classify.'), Specialist('analyst', 'Analyse.')
    cheap = router.plan(classifier, data_class='internal')
    assert cheap.tiers == (('mini', 'onprem'),)
    assert cheap.rejected == {'sonnet': 'cost tier medium above low'}
    strong = router.plan(analyst, data_class='internal')
    assert strong.tiers == (('sonnet', 'opus', 'onprem'),)
    assert (
        strong.reason
        == 'analyst → sonnet: first choice of the policy chain, approved for internal; fallback opus, onprem'
    )
    secret = router.plan(analyst, data_class='confidential')
    assert secret.tiers == (('onprem',),)
    assert secret.reason.startswith(
        'analyst → onprem: first approved in the policy chain (sonnet rejected), approved for confidential; rejected sonnet (not approved'
    )
    assert secret.rejected == {
        'sonnet': 'not approved for confidential (approved: public, internal)',
        'opus': "region us not in ['eu']",
    }
    fast = ModelRouter(
        router.registry, {'specialists': {'analyst': {'fallback': ['opus', 'sonnet'], 'max_latency_ms': 3000}}}
    )
    assert fast.plan(analyst, data_class='public').tiers == (('sonnet',),)
    assert fast.plan(analyst, data_class='public').rejected == {
        'opus': 'p50 10000 ms over the latency budget of 3000 ms'
    }


def test_without_a_policy_entry_the_specialist_chain_then_the_default_then_cheapest_first():
    reg = tiered_router().registry
    declared = Specialist('coder', 'Code.', model='opus', fallback_models=['onprem', 'mini'], requires=['reasoning'])
    bare = Specialist('helper', 'Help.')
    plain = ModelRouter(reg)
    plan = plain.plan(declared, data_class='internal')
    assert plan.tiers == (('opus', 'onprem'),) and plan.rejected == {'mini': 'lacks capability reasoning'}
    assert plan.reason.startswith("coder → opus: first choice of the specialist's own chain")
    assert plain.plan(bare, data_class='internal').tiers[0][:2] == ('boss', 'mini')  # free, then cheapest
    assert ModelRouter(reg, {'default': ['onprem', 'sonnet']}).plan(bare, data_class='internal').tiers == (
        ('onprem', 'sonnet'),
    )


async def test_team_routes_each_delegation_and_records_why(state_dir):
    team = team_of(tiered_router(), 'classifier', 'analyst')
    result = await team.run('triage this', project='p')
    assert result.output == 'mini:task for classifier | sonnet:task for analyst'
    reasons = {d.specialist: (d.model_id, d.route_reason) for d in result.delegations}
    assert reasons['classifier'][0] == 'mini' and 'approved for internal' in reasons['classifier'][1]
    assert reasons['analyst'][0] == 'sonnet'

    secret = await team.run('triage this secret', project='p', data_class='confidential')
    assert secret.output == 'onprem:task for analyst | onprem:task for classifier'
    assert {d.model_id for d in secret.delegations} == {'onprem'}
    served = {(e.specialist, e.model_id, e.data_class) for e in Ledger().entries(run_id=secret.run_id)}
    assert served == {
        ('supervisor', 'boss', 'confidential'),
        ('classifier', 'onprem', 'confidential'),
        ('analyst', 'onprem', 'confidential'),
    }


async def test_no_route_stops_the_run_naming_specialist_class_and_rejections(state_dir):
    router = tiered_router()
    mini = router.registry.model('mini')
    strict = ModelRouter(
        router.registry,
        {
            'specialists': {
                'supervisor': {'preferred': 'boss'},
                'classifier': {'preferred': 'mini', 'fallback': ['sonnet']},
            }
        },
    )
    team = team_of(strict, 'classifier', name='strict')
    calls_before = mini.calls
    with pytest.raises(NoRouteError) as info:
        await team.run('triage', project='p', data_class='confidential')
    err = info.value
    assert (err.specialist, err.data_class) == ('classifier', 'confidential')
    assert err.rejected == {
        'mini': 'not approved for confidential (approved: public, internal)',
        'sonnet': 'not approved for confidential (approved: public, internal)',
    }
    assert str(err).startswith(
        "no model for specialist 'classifier' with data class 'confidential' (mini: not approved"
    )
    assert mini.calls == calls_before  # the data never reached a model
    [run] = team.list_runs(limit=1)
    assert run.status == 'failed' and 'NoRouteError' in (run.error or '')


def test_unknown_models_are_refused_when_the_team_is_built(state_dir):
    router = tiered_router()
    with pytest.raises(UnknownModelError, match="unknown model 'gpt-9'.*specialist 'coding' names it"):
        Team(Supervisor(), [Specialist('coding', 'Code.', model='gpt-9')], router=router, durable=False)
    with pytest.raises(UnknownModelError, match='not in the registry'):
        Team(Supervisor(), [Specialist('coding', 'Code.', model=worker('stray'))], router=router, durable=False)
    with pytest.raises(
        ConfigError,
        match=r"specialist 'coding': no registered model fits it for any data class .*lacks capability quantum",
    ):
        Team(Supervisor(), [Specialist('coding', 'Code.', requires=['quantum'])], router=router, durable=False)


def flaky_router(
    failures: dict[str, object], *, last_reliable: bool = True
) -> tuple[ModelRouter, dict[str, ScriptedModel]]:
    def model(name: str, error: object) -> ScriptedModel:
        def answer(messages):
            err = error() if callable(error) else error  # an exception, or a function deciding per call
            if err is not None:
                raise err
            return text(f'{name}:{last_user_prompt(messages)}')

        return ScriptedModel(answer, name=name)

    models = {n: model(n, e) for n, e in failures.items()}
    if last_reliable:
        models['backup'] = model('backup', None)
    reg = ModelRegistry(
        {
            n: {'model': m, 'usd_per_m_input': 1, 'version': f'{n}-v1', 'data_classes': list(CLASSES)}
            for n, m in models.items()
        }
        | {'boss': {'model': supervisor_model('worker'), 'data_classes': list(CLASSES)}}
    )
    chain = list(models)
    policy = {
        'specialists': {'supervisor': {'preferred': 'boss'}, 'worker': {'preferred': chain[0], 'fallback': chain[1:]}}
    }
    return ModelRouter(reg, policy), models


@pytest.mark.parametrize(
    'error',
    [fail(503), fail(429), fail(500), ModelTimeoutError('primary', 'read timed out'), ConnectionError('reset')],
    ids=['503', '429', '500', 'timeout', 'connection'],
)
async def test_provider_failures_fall_back_to_the_next_approved_model(state_dir, error):
    router, models = flaky_router({'primary': error})
    result = await team_of(router, 'worker').run('go', project='p')
    assert result.output == 'backup:task for worker'
    attempts = [(a['specialist'], a['model_id'], a['status']) for a in Ledger().attempts(result.run_id)]
    assert attempts == [
        ('supervisor', 'boss', 'ok'),
        ('worker', 'primary', 'failed'),
        ('worker', 'backup', 'ok'),
        ('supervisor', 'boss', 'ok'),
    ]
    assert [e.model_id for e in Ledger().entries(run_id=result.run_id, specialist='worker')] == ['backup']


@pytest.mark.parametrize('status', [400, 401, 404, 422])
async def test_no_fallback_on_a_4xx_another_model_would_repeat(state_dir, status):
    router, models = flaky_router({'primary': fail(status)})
    team = team_of(router, 'worker')
    with pytest.raises(ProviderError, match=f'primary: HTTP {status}'):
        await team.run('go', project='p')
    assert models['backup'].calls == 0
    [run] = team.list_runs(limit=1)
    assert [(a['model_id'], a['status']) for a in Ledger().attempts(run.run_id) if a['specialist'] == 'worker'] == [
        ('primary', 'failed')
    ]


async def test_fault_injection_every_run_completes_via_fallback(state_dir):
    rng, lock = random.Random(7), threading.Lock()
    injected = {'a': 0, 'b': 0}
    errors = [lambda: fail(429), lambda: fail(503), lambda: ModelTimeoutError('m', 'timed out')]

    def flaky(name: str):
        def maybe():
            with lock:
                hit = rng.random() < 0.3
                if hit:
                    injected[name] += 1
                    return rng.choice(errors)()
            return None

        return maybe

    # Both cloud providers fail 30% of calls (429/503/timeouts); the on-prem model is the last resort.
    router, models = flaky_router({'a': flaky('a'), 'b': flaky('b')})
    team = team_of(router, 'worker', name='faulty')
    outputs: list[str] = []

    async def one(i: int) -> None:
        outputs.append((await team.run(f'job {i}', project='p')).output)

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(one, i)
    assert len(outputs) == 40 and all(o.endswith(':task for worker') for o in outputs)
    rows = [a for r in team.list_runs(limit=100) for a in Ledger().attempts(r.run_id) if a['specialist'] == 'worker']
    failed = [a for a in rows if a['status'] == 'failed']
    assert len(failed) == injected['a'] + injected['b'] > 0
    assert sum(a['status'] == 'ok' for a in rows) == 40  # exactly one answer per delegation
    assert 0.15 < injected['a'] / 40 < 0.45


class Label(BaseModel):
    label: Literal['bug', 'feature']


async def test_invalid_output_escalates_to_a_stronger_approved_model(state_dir):
    cheap = ScriptedModel([final_output(label='banana')], name='cheap')
    strong = ScriptedModel([final_output(label='bug')], name='strong')
    boss = ScriptedModel(
        lambda m: (
            text('verdict ' + tool_results(m)[0]) if tool_results(m) else [delegate('classifier', 'crash on save')]
        )
    )
    reg = ModelRegistry(
        {
            'cheap': {'model': cheap, 'usd_per_m_input': 0.1, 'data_classes': ['internal']},
            'strong': {'model': strong, 'usd_per_m_input': 5, 'data_classes': ['internal']},
            'secret-strong': {'model': ScriptedModel(['x']), 'data_classes': ['public']},
            'boss': {'model': boss, 'data_classes': ['internal']},
        }
    )
    policy = {
        'specialists': {
            'supervisor': {'preferred': 'boss'},
            'classifier': {
                'preferred': 'cheap',
                'max_cost_tier': 'low',  # escalation is exempt
                'escalate': ['secret-strong', 'strong'],
            },
        }
    }
    team = Team(
        Supervisor(),
        [Specialist('classifier', 'Label the issue.', output_type=Label)],
        router=ModelRouter(reg, policy),
        durable=False,
    )
    result = await team.run('triage', project='p')
    assert result.output == 'verdict {"label":"bug"}'
    [d] = result.delegations
    assert 'escalate to strong on invalid output' in d.route_reason
    assert 'secret-strong (as escalation: not approved for internal (approved: public))' in d.route_reason
    tiers = [
        (a['model_id'], a['tier'], a['status'])
        for a in Ledger().attempts(result.run_id)
        if a['specialist'] == 'classifier'
    ]
    assert tiers == [('cheap', 0, 'ok'), ('strong', 1, 'ok')]
    assert d.cost_usd == pytest.approx(
        sum(e.cost_usd for e in Ledger().entries(run_id=result.run_id, specialist='classifier'))
    )


async def test_durable_run_falls_back_and_records_each_call_once(state_dir):
    router, models = flaky_router({'primary': fail(503)})
    team = team_of(router, 'worker', durable=True, name='durable-routed')
    result = await team.run('go', project='p')
    assert result.output == 'backup:task for worker'
    entries = Ledger().entries(run_id=result.run_id)
    assert [(e.specialist, e.model_id) for e in entries] == [
        ('supervisor', 'boss'),
        ('worker', 'backup'),
        ('supervisor', 'boss'),
    ]
    assert result.cost_usd == pytest.approx(sum(e.cost_usd for e in entries))
    # Recovery re-runs the hooks of recorded steps: the ledger does not count them twice.
    from pydantic_ai.messages import ModelResponse, TextPart
    from pydantic_ai.usage import RequestUsage

    from proctor.models._ledger import LedgerObserver
    from proctor.orchestrator import ModelCall, RunDeps

    deps = RunDeps(
        run_id=result.run_id,
        team=team.name,
        project='p',
        data_class='internal',
        agent_path='supervisor',
        specialist='supervisor',
    )
    call = ModelCall(
        deps=deps,
        key=entries[0].call_key,
        model_id='boss',
        model_name='boss',
        system='',
        messages=[],
        model_settings=None,
    )
    await LedgerObserver(registry=router.registry).after_model_call(
        call, ModelResponse(parts=[TextPart('x')], usage=RequestUsage(input_tokens=9, output_tokens=9))
    )
    assert len(Ledger().entries(run_id=result.run_id)) == 3


# ---------------------------------------------------------------------- property: data never leaves its class

model_ids = st.sampled_from(['m0', 'm1', 'm2', 'm3', 'm4', 'm5'])
registries = st.dictionaries(
    model_ids,
    st.fixed_dictionaries(
        {
            'data_classes': st.lists(st.sampled_from(CLASSES), min_size=1, max_size=4, unique=True),
            'capabilities': st.lists(st.sampled_from(['reasoning', 'coding', 'cheap']), unique=True),
            'usd_per_m_input': st.floats(0, 20),
            'usd_per_m_output': st.floats(0, 80),
            'region': st.sampled_from(['eu', 'us']),
        }
    ),
    min_size=1,
)


@st.composite
def setups(draw):
    reg = draw(registries)
    ids = sorted(reg)
    chain = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=4, unique=True))
    spec_policy = {
        'preferred': chain[0],
        'fallback': chain[1:],
        'escalate': draw(st.lists(st.sampled_from(ids), max_size=2, unique=True)),
        'requires': draw(st.lists(st.sampled_from(['reasoning', 'coding']), max_size=1)),
    }
    rules = draw(
        st.lists(
            st.fixed_dictionaries({'data_class': st.sampled_from(CLASSES), 'regions': st.just(['eu'])}), max_size=2
        )
    )
    return reg, {'specialists': {'coding': spec_policy}, 'rules': rules}, draw(st.sampled_from(CLASSES))


@settings(max_examples=300, deadline=None)
@given(setups())
def test_property_a_plan_only_names_models_approved_for_the_data_class(setup):
    reg, policy, data_class = setup
    try:
        router = ModelRouter({m: {'model': 'test', **v} for m, v in reg.items()}, policy)
    except ConfigError:
        return  # a rule no model can satisfy is refused at load time
    try:
        plan = router.plan(Specialist('coding', 'Code.'), data_class=data_class)
    except NoRouteError as e:
        assert e.rejected and all(m in reg for m in e.rejected)
        return
    for mid in plan.model_ids:
        assert data_class in reg[mid]['data_classes']


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(setups(), st.randoms(use_true_random=False))
def test_property_a_run_of_class_c_never_reaches_a_model_not_approved_for_c(state_dir, setup, rnd):
    reg, policy, data_class = setup
    seen: dict[str, int] = {}

    def model(name: str) -> ScriptedModel:
        def answer(messages):
            seen[name] = seen.get(name, 0) + 1
            if rnd.random() < 0.4:
                raise fail(rnd.choice([429, 503]))
            return text(name)

        return ScriptedModel(answer, name=name)

    models = {m: {**v, 'model': model(m)} for m, v in reg.items()}
    models['boss'] = {'model': supervisor_model('coding'), 'data_classes': list(CLASSES)}
    policy = {**policy, 'specialists': {**policy['specialists'], 'supervisor': {'preferred': 'boss'}}}
    try:
        router = ModelRouter(models, policy)
        team = Team(Supervisor(), [Specialist('coding', 'Code.')], router=router, durable=False, name='prop')
    except ConfigError:
        return
    try:
        anyio.run(lambda: team.run('work on the secret', data_class=data_class))
    except Exception:
        pass
    for name in seen:
        assert data_class in reg[name]['data_classes'], (name, data_class)


def test_routing_policy_example_runs_offline(tmp_path, capsys):
    from proctor.examples import routing_policy

    seen = routing_policy.main(['--state-dir', str(tmp_path / 'state')])
    assert dict(seen['tiers']) == {'supervisor': 'sonnet', 'supervisor>triage': 'mini', 'supervisor>analyst': 'sonnet'}
    assert {m for _, m in seen['confidential']} == {'onprem'}
    assert dict(seen['outage']) == {'supervisor': 'gpt4o', 'supervisor>triage': 'mini', 'supervisor>analyst': 'gpt4o'}
    out = capsys.readouterr().out
    assert 'attempt on sonnet by supervisor>analyst failed: ModelHTTPError: status_code: 503' in out


def test_routing_policy_example_uses_the_state_dir_of_the_environment(tmp_path, monkeypatch, capsys):
    from proctor.examples import routing_policy

    monkeypatch.setenv('PROCTOR_STATE_DIR', str(tmp_path / 'env-state'))
    routing_policy.main([])
    assert f'proctor --state-dir {tmp_path / "env-state"} usage' in capsys.readouterr().out
    assert (tmp_path / 'env-state' / 'proctor.db').exists()


async def test_observers_after_the_router_see_the_serving_model_and_its_version(state_dir):
    from proctor.orchestrator import RunObserver

    class Audit(RunObserver):
        def __init__(self) -> None:
            self.before: list[str] = []
            self.after: list[tuple[str, str | None]] = []

        async def before_model_call(self, call):
            self.before.append(call.model_id)

        async def after_model_call(self, call, response):
            self.after.append((call.model_id, call.extra.get('proctor.model_version')))

    router, _ = flaky_router({'primary': fail(503)})
    audit = Audit()
    team = Team(Supervisor(), [Specialist('worker', 'Work.')], router=router, durable=False, observers=[audit])
    assert team.observers[0] is router.ledger  # the router's ledger first, when the team is built
    await team.run('go', project='p')
    assert audit.before == ['boss', 'primary', 'boss']
    assert audit.after == [('boss', None), ('backup', 'backup-v1'), ('boss', None)]


@pytest.mark.parametrize('durable', [False, True], ids=['plain', 'durable'])
async def test_a_delegation_records_the_model_that_served_it_not_the_preferred_one(state_dir, durable):
    router, models = flaky_router({'primary': fail(503)})
    team = team_of(router, 'worker', durable=durable, name=f'served-{durable}')
    result = await team.run('go', project='p')
    assert result.output == 'backup:task for worker' and models['primary'].calls == 1
    [d] = result.delegations
    assert (d.specialist, d.model_id) == ('worker', 'backup')
    assert 'worker → primary' in d.route_reason  # the route still says what was preferred, and why
    assert [x.model_id for x in team.get_run(result.run_id).delegations] == ['backup']
