"""Evaluation suites, their checks and judge, results in the store, evaluation-driven routing, the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from proctor import ModelRouter, Specialist, Supervisor, Team
from proctor.cli import main
from proctor.exceptions import BudgetExceeded, ConfigError, UnknownModelError, UserError
from proctor.models._budget import Budget
from proctor.models._eval import Evaluator
from proctor.models._eval_store import EvalRecords, compare_runs
from proctor.models._eval_suite import load_suite, parse_suite
from proctor.models._ledger import Ledger
from proctor.state._audit import audit_entries, verify_audit
from proctor.state._schema import eval_runs
from proctor.state._store import StateStore
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_results

ALL = ['public', 'internal', 'confidential', 'restricted']


def write(tmp_path: Path, body: str, name: str = 'suite.toml') -> Path:
    p = tmp_path / name
    p.write_text(body)
    return p


# ---------------------------------------------------------------------- suites and checks


@pytest.mark.parametrize(
    ('body', 'key', 'message'),
    [
        ('suite = "x"\n[[cases]\n', None, 'invalid TOML'),
        ('suite = "x"\n', 'cases', 'no cases'),
        ('suite = "x"\ncases = []\n', 'cases', 'no cases'),
        ('colour = 1\n[[cases]]\ninput = "a"\nchecks = [{exact = "a"}]\n', 'colour', 'unknown key'),
        ('[[cases]]\ninput = "a"\n', 'cases[0].checks', 'no checks'),
        ('[[cases]]\nchecks = [{exact = "a"}]\n', 'cases[0].input', 'needs input'),
        (
            '[[cases]]\ninput = "a"\ndata_class = "secret"\nchecks = [{exact = "a"}]\n',
            'cases[0].data_class',
            'unknown data class',
        ),
        ('[[cases]]\ninput = "a"\nchecks = [{exact = "a", contains = "b"}]\n', 'cases[0].checks[0]', 'exactly one of'),
        (
            '[[cases]]\ninput = "a"\nchecks = [{regex = "("}]\n',
            'cases[0].checks[0].regex',
            'invalid regular expression',
        ),
        (
            '[[cases]]\ninput = "a"\nchecks = [{python = "no_such_module_xyz:check"}]\n',
            'cases[0].checks[0].python',
            "cannot import module 'no_such_module_xyz'",
        ),
        (
            '[[cases]]\ninput = "a"\nchecks = [{python = "json:no_such_fn"}]\n',
            'cases[0].checks[0].python',
            "has no 'no_such_fn'",
        ),
        (
            '[[cases]]\ninput = "a"\nchecks = [{python = "json"}]\n',
            'cases[0].checks[0].python',
            'must be "module:name"',
        ),
        ('[[cases]]\ninput = "a"\nchecks = [{judge = "strong"}]\n', 'cases[0].checks[0].rubric', 'needs rubric'),
        (
            '[[cases]]\ninput = "a"\nchecks = [{json_schema = {type = 12}}]\n',
            'cases[0].checks[0].json_schema',
            'invalid JSON schema',
        ),
        (
            '[[cases]]\ninput = "a"\nchecks = [{contains = "a", loud = true}]\n',
            'cases[0].checks[0].loud',
            'unknown option',
        ),
        (
            '[[cases]]\nname = "a"\ninput = "a"\nchecks = [{exact = "a"}]\n[[cases]]\nname = "a"\ninput = "b"\nchecks = [{exact = "a"}]\n',
            'cases[1].name',
            'two cases',
        ),
    ],
)
def test_a_malformed_suite_names_the_file_and_the_key(tmp_path, body, key, message):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as e:
        load_suite(path)
    assert e.value.file == str(path)
    assert e.value.key == key
    assert message in str(e.value)


def test_every_check_kind_scores_an_output():
    suite = parse_suite(
        {
            'specialist': 'triage',
            'cases': [
                {
                    'name': 'c',
                    'input': 'x',
                    'checks': [
                        {'exact': 'BUG', 'ignore_case': True},
                        {'contains': 'bu'},
                        {'regex': '^[a-z]+$'},
                    ],
                },
                {
                    'name': 'j',
                    'input': 'x',
                    'checks': [
                        {'json_schema': {'type': 'object', 'required': ['answer']}},
                        {'output_type': 'proctor.examples.eval_checks:Answer'},
                        {'python': 'proctor.examples.eval_checks:shows_work', 'min_score': 1.0},
                    ],
                },
            ],
        },
        name='t',
    )
    word, structured = suite.cases
    assert [c.run('bug', word).passed for c in word.checks] == [True, True, True]
    assert [c.run('Bug!', word).passed for c in word.checks] == [False, False, False]
    good = json.dumps({'answer': 3, 'steps': ['1 + 2', '= 3']})
    assert [c.run(good, structured).passed for c in structured.checks] == [True, True, True]
    half = json.dumps({'answer': 3, 'steps': ['1 + 2 = 3']})
    got = [c.run(half, structured) for c in structured.checks]
    assert [r.passed for r in got] == [True, True, False]
    assert got[2].score == 0.5 and '1 step(s)' in got[2].reason
    bad = [c.run('{"answer": "three"}', structured) for c in structured.checks]
    assert [r.passed for r in bad] == [True, False, False]
    assert 'answer' in bad[1].reason


# ---------------------------------------------------------------------- running suites

TRIAGE_SUITE = """
suite = "triage"
specialist = "triage"
instructions = "Classify: billing, bug or question."
checks = [{ regex = "^(billing|bug|question)$" }]

[[cases]]
name = "charge"
input = "charged twice"
checks = [{ exact = "billing" }]

[[cases]]
name = "crash"
input = "it crashes"
checks = [{ exact = "bug" }]

[[cases]]
name = "secret"
input = "salary file broken"
data_class = "confidential"
checks = [{ exact = "bug" }]
"""
ANSWERS = {'charged twice': 'billing', 'it crashes': 'bug', 'salary file broken': 'bug'}


def classifier(name: str, seen: list[str], wrong: dict[str, set[str]]) -> ScriptedModel:
    def answer(messages, info):
        prompt = last_user_prompt(messages)
        seen.append(prompt)
        if 'delegate_to_triage' in {t.name for t in info.function_tools}:
            return [delegate('triage', 'it crashes')] if not tool_results(messages) else text('done')
        if prompt in wrong.get(name, ()):
            return text('question')
        return text(ANSWERS.get(prompt, 'question'))

    return ScriptedModel(answer, name=name)


def make_router(
    seen: dict[str, list[str]], *, wrong: dict[str, set[str]] | None = None, policy=None, budgets=(), versions=None
):
    wrong = {} if wrong is None else wrong
    versions = versions or {}
    spec = {
        'cheap': (0.1, 0.4, ['public', 'internal']),
        'mid': (1.0, 4.0, ['public', 'internal']),
        'strong': (3.0, 15.0, ALL),
    }
    models = {}
    for mid, (pin, pout, dcs) in spec.items():
        seen.setdefault(mid, [])
        models[mid] = {
            'model': classifier(mid, seen[mid], wrong),
            'usd_per_m_input': pin,
            'usd_per_m_output': pout,
            'data_classes': dcs,
            'version': versions.get(mid, 'v1'),
        }
    policy = policy or {
        'specialists': {
            'supervisor': {'preferred': 'strong'},
            'triage': {'select': 'cheapest-passing', 'suite': 'triage', 'min_pass_rate': 0.9, 'preferred': 'strong'},
        }
    }
    return ModelRouter(models, policy, budgets=budgets)


def test_a_suite_runs_on_each_approved_model_and_its_results_are_stored(tmp_path, state_dir):
    store = StateStore(state_dir)
    seen: dict[str, list[str]] = {}
    router = make_router(seen, wrong={'mid': {'it crashes'}})
    suite = load_suite(write(tmp_path, TRIAGE_SUITE, 'triage.toml'))
    ticks: list[tuple[int, int]] = []
    report = Evaluator(router, store).run_sync(
        suite, concurrency=3, repeat=2, progress=lambda d, t, c: ticks.append((d, t))
    )
    # never a model not approved for a case's data class: cheap and mid never saw the confidential case
    assert 'salary file broken' not in seen['cheap'] + seen['mid']
    assert seen['strong'].count('salary file broken') == 2
    assert report.skipped == {'cheap': ['secret'], 'mid': ['secret']}
    assert ticks[-1] == (14, 14) and len(ticks) == 14
    by = {r.model_id: r for r in report.results}
    assert (by['cheap'].pass_rate, by['mid'].pass_rate, by['strong'].pass_rate) == (1.0, 0.5, 1.0)
    assert (by['cheap'].cases, by['cheap'].skipped, by['strong'].cases) == (4, 2, 6)
    assert by['cheap'].model_version == 'v1'
    assert by['cheap'].cost_per_case < by['mid'].cost_per_case < by['strong'].cost_per_case
    assert by['strong'].p50_ms <= by['strong'].p95_ms
    assert by['cheap'].tokens > 0

    records = EvalRecords(store)
    run = records.get(report.run_id[:12])
    assert run.status == 'complete' and run.models == ['cheap', 'mid', 'strong'] and run.repeat == 2
    assert {r.model_id: r.pass_rate for r in records.results(report.run_id)} == {
        'cheap': 1.0,
        'mid': 0.5,
        'strong': 1.0,
    }
    failing = [c for c in records.cases(report.run_id, 'mid') if not c['passed']]
    assert {c['case_name'] for c in failing} == {'crash'}
    assert "expected 'bug', got 'question'" in failing[0]['checks'][1]['reason']
    # the spend went through the ledger, booked to the evaluation
    rows = Ledger(store).entries(run_id=report.run_id)
    assert len(rows) == 14 and {r.team for r in rows} == {'eval'} and {r.specialist for r in rows} == {'triage'}
    assert sum(r.cost_usd for r in rows if r.model_id == 'strong') == pytest.approx(by['strong'].cost_usd)
    assert {r.model_version for r in rows} == {'v1'}
    # and the evaluation itself is in the audit log
    entries = [e for e in audit_entries(store) if e.kind == 'eval_run']
    assert entries[0].record['results']['cheap']['pass_rate'] == 1.0
    assert verify_audit(store).ok


def test_the_judge_is_a_registry_model_and_must_be_approved_for_the_case(tmp_path, state_dir):
    store = StateStore(state_dir)
    prompts: list[str] = []

    def judge(messages, info):
        prompt = last_user_prompt(messages)
        prompts.append(prompt)
        good = 'Answer to grade:\nbug' in prompt
        return text(json.dumps({'passed': good, 'score': 0.9 if good else 0.1, 'reason': 'graded'}))

    seen: dict[str, list[str]] = {}
    router = make_router(seen)
    router.registry.bind('mid', ScriptedModel(judge, name='judge'))
    body = """
specialist = "triage"
[[cases]]
name = "crash"
input = "it crashes"
checks = [{ judge = "mid", rubric = "Says it is a bug.", min_score = 0.5 }]
"""
    report = Evaluator(router, store).run_sync(load_suite(write(tmp_path, body)), models=['cheap', 'strong'])
    assert {r.model_id: r.pass_rate for r in report.results} == {'cheap': 1.0, 'strong': 1.0}
    assert len(prompts) == 2 and 'Rubric:\nSays it is a bug.' in prompts[0]
    case = EvalRecords(store).cases(report.run_id, 'cheap')[0]
    assert case['checks'][0] == {'check': 'judge:mid', 'passed': True, 'score': 0.9, 'reason': 'graded'}
    judged = [r for r in Ledger(store).entries(run_id=report.run_id) if r.model_id == 'mid']
    assert len(judged) == 2 and {r.specialist for r in judged} == {'eval-judge'}

    # a judge not approved for a case's data class: refused before anything runs or is recorded
    secret = body.replace('name = "crash"', 'name = "crash"\ndata_class = "confidential"')
    path = write(tmp_path, secret, 'secret.toml')
    with pytest.raises(ConfigError) as e:
        Evaluator(router, store).run_sync(load_suite(path), models=['strong'])
    assert e.value.file == str(path) and e.value.key == 'cases[0].checks[0].judge'
    assert "may not see case 'crash' of data class 'confidential'" in str(e.value)
    assert len(EvalRecords(store).runs()) == 1


def test_bad_candidates_are_refused_and_nothing_is_recorded(tmp_path, state_dir):
    store = StateStore(state_dir)
    router = make_router({})
    suite = load_suite(write(tmp_path, TRIAGE_SUITE))
    with pytest.raises(UnknownModelError, match="unknown model 'gpt-9'"):
        Evaluator(router, store).run_sync(suite, models=['cheap', 'gpt-9'])
    confidential = write(
        tmp_path, 'data_class = "confidential"\n[[cases]]\ninput = "a"\nchecks = [{ exact = "bug" }]\n', 'c.toml'
    )
    with pytest.raises(UserError, match="model 'cheap' may see none of the cases"):
        Evaluator(router, store).run_sync(load_suite(confidential), models=['cheap'])
    judged = write(tmp_path, '[[cases]]\ninput = "a"\nchecks = [{ judge = "gpt-9", rubric = "r" }]\n', 'j.toml')
    with pytest.raises(
        UnknownModelError, match=f"unknown model 'gpt-9'.*the judge of {judged}: cases\\[0\\].checks\\[0\\]"
    ):
        Evaluator(router, store).run_sync(load_suite(judged))
    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(eval_runs)).scalar() == 0


def test_a_run_stopped_by_its_budget_is_failed_and_never_read_as_complete(tmp_path, state_dir):
    store = StateStore(state_dir)
    router = make_router({}, budgets=[Budget('project', 'eval', usd=0.0002)])
    suite = load_suite(write(tmp_path, TRIAGE_SUITE))
    with pytest.raises(BudgetExceeded):
        Evaluator(router, store).run_sync(suite, concurrency=1)
    records = EvalRecords(store)
    (run,) = records.runs()
    assert run.status == 'failed' and 'BudgetExceeded' in (run.error or '')
    assert records.results(run.run_id) == [] and records.latest('triage') == {}
    assert 'no model passes suite triage' in route(router, store).reason


# ---------------------------------------------------------------------- routing by evaluation


def route(router: ModelRouter, store: StateStore, data_class: str = 'internal'):
    router.evaluations.store = store
    return router.route(Specialist('triage', 'Classify.'), data_class=data_class, project='p', team='t')


def test_the_router_picks_the_cheapest_passing_model_and_says_why(tmp_path, state_dir):
    store = StateStore(state_dir)
    seen: dict[str, list[str]] = {}
    wrong: dict[str, set[str]] = {}
    router = make_router(seen, wrong=wrong)
    suite = load_suite(write(tmp_path, TRIAGE_SUITE))

    before = route(router, store)
    assert before.model_id == 'strong'
    assert 'no model passes suite triage (min pass rate 90%, max age 14d): static preference' in before.reason
    assert 'cheap not evaluated on suite triage' in before.reason

    first = Evaluator(router, store).run_sync(suite)
    chosen = route(router, store)
    today = time.strftime('%Y-%m-%d', time.gmtime())
    assert chosen.model_id == 'cheap'
    assert chosen.reason.startswith('triage → cheap: cheapest passing suite triage: pass rate 100% >= 90%')
    assert f'evaluated {today} (eval {first.run_id}, version v1)' in chosen.reason
    assert chosen.plan.tiers[0][:2] == ('cheap', 'mid')  # the other passing models are its fallbacks
    # confidential: only strong is approved, and it passed
    assert route(router, store, 'confidential').model_id == 'strong'

    # the cheap model regresses: the next evaluation moves the router off it
    wrong['cheap'] = {'it crashes'}
    second = Evaluator(router, store).run_sync(suite)
    moved = route(router, store)
    assert moved.model_id == 'mid'
    assert 'cheap pass rate 50% < 90%' in moved.reason
    _, _, diff = compare_runs(EvalRecords(store), first.run_id, second.run_id)
    by = {d.model_id: d for d in diff}
    assert (by['cheap'].status, by['cheap'].newly_failing) == ('regressed', ['crash'])
    assert by['mid'].status == 'same'

    # a newer version of mid is not evaluated: not silently trusted
    upgraded = make_router({}, policy=router.policy, versions={'mid': 'v2'})
    r = route(upgraded, store)
    assert r.model_id == 'strong'
    assert 'mid not evaluated at version v2 (last evaluated v1' in r.reason


def test_a_stale_evaluation_falls_back_to_the_static_preference(tmp_path, state_dir):
    store = StateStore(state_dir)
    router = make_router({})
    report = Evaluator(router, store).run_sync(load_suite(write(tmp_path, TRIAGE_SUITE)))
    old = time.time() - 15 * 86400
    with store.engine.begin() as c:
        c.execute(
            sa.text('UPDATE proctor_eval_results SET created_at = :t WHERE run_id = :r'), {'t': old, 'r': report.run_id}
        )
    router.evaluations_changed()
    r = route(router, store)
    assert r.model_id == 'strong' and 'static preference' in r.reason
    assert 'cheap evaluation stale' in r.reason and 'older than 14d' in r.reason


def test_a_capability_routes_every_specialist_that_requires_it_by_its_suite(tmp_path, state_dir):
    store = StateStore(state_dir)
    seen: dict[str, list[str]] = {}
    base = make_router(seen)
    models = {m: base.registry.get(m).model_copy(update={'capabilities': ('classification',)}) for m in base.registry}
    policy = {
        'capabilities': {'classification': {'suite': 'triage', 'min_pass_rate': 0.9}},
        'specialists': {'pinned': {'select': 'static', 'preferred': 'strong'}},
    }
    router = ModelRouter(models, policy)
    router.evaluations.store = store
    Evaluator(router, store).run_sync(load_suite(write(tmp_path, TRIAGE_SUITE)))
    labeller = Specialist('labeller', 'Label.', requires=['classification'])
    r = router.route(labeller, data_class='internal', project='p', team='t')
    assert r.model_id == 'cheap' and 'cheapest passing suite triage' in r.reason
    # a specialist that says select = "static" keeps its static choice
    pinned = Specialist('pinned', 'Label.', requires=['classification'])
    assert router.route(pinned, data_class='internal', project='p', team='t').model_id == 'strong'
    # without the capability: static routing
    plain = router.route(Specialist('plain', 'x'), data_class='internal', project='p', team='t')
    assert plain.plan.evaluation is None


def test_select_needs_a_suite_and_a_readable_max_age():
    with pytest.raises(ConfigError, match='needs suite'):
        make_router({}, policy={'specialists': {'triage': {'select': 'cheapest-passing'}}})
    with pytest.raises(ConfigError, match='max_age'):
        make_router(
            {}, policy={'specialists': {'triage': {'select': 'cheapest-passing', 'suite': 's', 'max_age': 'soon'}}}
        )


@pytest.mark.anyio
async def test_a_team_run_records_the_evaluation_reason_on_the_delegation_and_in_the_audit_log(tmp_path, state_dir):
    store = StateStore(state_dir)
    router = make_router({})
    report = await Evaluator(router, store).run(load_suite(write(tmp_path, TRIAGE_SUITE)))
    team = Team(Supervisor(), [Specialist('triage', 'Classify.')], name='support', router=router)
    result = await team.run('triage this', project='p')
    (d,) = result.delegations
    assert d.model_id == 'cheap'
    assert 'cheapest passing suite triage: pass rate 100%' in d.route_reason and report.run_id in d.route_reason
    decisions = [e for e in audit_entries(store, run_id=result.run_id) if e.kind == 'route_decision']
    assert len(decisions) == 1
    rec = decisions[0].record
    assert rec['model_id'] == 'cheap' and rec['agent_path'] == 'supervisor>triage'
    assert rec['evaluation']['chosen']['eval_run_id'] == report.run_id
    assert rec['evaluation']['chosen']['pass_rate'] == 1.0
    from proctor.tracing import TraceStore

    spans = TraceStore(store).spans_of_run(result.run_id)
    reasons = [s.attributes.get('proctor.route_reason', '') for s in spans]
    assert any('cheapest passing suite triage' in r for r in reasons)
    assert verify_audit(store).ok


# ---------------------------------------------------------------------- the CLI

EXAMPLE_ROUTER = 'proctor.examples.evaluate_models:router'


def test_eval_cli_runs_reports_and_compares(state_dir, capsys):
    main(
        ['eval', 'run', 'triage', '--router', EXAMPLE_ROUTER, '--models', 'tiny,strong', '--concurrency', '2', '--json']
    )
    first = json.loads(capsys.readouterr().out)
    assert first['status'] == 'complete' and {r['model_id'] for r in first['results']} == {'tiny', 'strong'}
    assert first['skipped'] == {'tiny': ['payroll-export']}
    main(['eval', 'run', 'triage', '--router', EXAMPLE_ROUTER, '--models', 'tiny,strong', '--repeat', '2'])
    out = capsys.readouterr().out
    assert 'suite triage (triage), run ev-' in out and 'tiny: not run on payroll-export' in out
    line = next(ln for ln in out.splitlines() if ln.startswith('tiny '))
    assert '100%' in line and ' 18 ' in line
    main(['eval', 'report', 'triage', '--json'])
    rep = json.loads(capsys.readouterr().out)
    (s,) = rep['suites']
    assert [r['status'] for r in s['runs']] == ['complete', 'complete']
    second = s['runs'][0]['run_id']
    main(['eval', 'compare', first['run_id'], second])
    out = capsys.readouterr().out
    assert '0 regressions' in out and 'same' in out
    main(['eval', 'report'])
    assert 'suite triage: latest complete result per model' in capsys.readouterr().out


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        (['eval', 'run', 'nosuch', '--router', EXAMPLE_ROUTER], "no suite 'nosuch'"),
        (['eval', 'run', 'triage', '--router', EXAMPLE_ROUTER, '--models', 'tiny,gpt-9'], "unknown model 'gpt-9'"),
        (['eval', 'run', 'triage', '--router', 'no_such_mod_q:router'], "cannot import module 'no_such_mod_q'"),
        (['eval', 'run', 'triage', '--config', '/nonexistent/proctor.toml'], 'file not found'),
        (['eval', 'compare', 'ev-a', 'ev-b'], "no evaluation run 'ev-a'"),
    ],
)
def test_eval_cli_bad_input_is_one_line_and_nonzero(state_dir, capsys, args, message):
    state_dir.mkdir(parents=True, exist_ok=True)
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and 'Traceback' not in err


def test_evaluate_models_example_runs_offline(tmp_path, capsys):
    from proctor.examples import evaluate_models

    seen = evaluate_models.main(['--state-dir', str(tmp_path / 'state')])
    assert seen['routes']['before'] == {'triage': 'strong', 'analyst': 'strong'}
    assert seen['routes']['evaluated'] == {'triage': 'tiny', 'analyst': 'strong'}
    assert seen['team_run'] == {'triage': 'tiny', 'analyst': 'strong'}
    assert seen['audit_route_decisions'] == 2
    assert seen['regressions'] == ['tiny']
    assert seen['routes']['regressed'] == {'triage': 'mid'}
    assert seen['new_version_verdict'].startswith('not evaluated at version 2026-01-01')
    out = capsys.readouterr().out
    assert '| tiny | 2025-04-14 | 100% |' in out and 'regression: tiny 100% -> 78%' in out
