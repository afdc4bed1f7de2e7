"""Evaluation-driven routing: the cheapest model that passes each specialist's suite serves it.

`examples/evaluate.toml` registers three models of different price and accuracy (tiny, mid, strong)
and routes two specialists by `select = "cheapest-passing"`: triage on suite `evals/triage.toml`,
the analyst on `evals/reasoning.toml` (checked by an output type, a JSON schema, a Python check and
an LLM judge). This script binds each id to a scripted model (offline, no API key) and:

1. routes before any evaluation: no model passes yet, so the static preference (strong) serves;
2. evaluates both suites on the three models: tiny passes triage (and never sees its confidential
   case), only strong passes reasoning; a team run then sends triage to tiny, the analysis to strong,
   and the reasons (suite, pass rate, date) are on the delegations, the trace and the audit log;
3. tiny "regresses" (its provider changed something): the next triage evaluation catches it,
   `compare` names the cases that started failing, and the router moves triage to mid;
4. tiny's provider ships a new version: not evaluated at that version, so it is not trusted.

    python examples/evaluate_models.py [--state-dir DIR]
    proctor --state-dir DIR eval report            # the same results from the command line
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIG = HERE / 'evaluate.toml'

TRIAGE = {
    'I was charged twice for my subscription this month.': 'billing',
    'The app crashes every time I click Export to CSV.': 'bug',
    'Is there a dark mode, and how do I turn it on?': 'question',
    'Please refund the annual plan I bought by mistake yesterday.': 'billing',
    'After the update the login page keeps redirecting to itself.': 'bug',
    'How many seats does the team plan include?': 'question',
    'My invoice is missing our VAT number, can you reissue it?': 'billing',
    'Sync has been stuck at 99% since Monday on two laptops.': 'bug',
    'What are the rate limits of the public API?': 'question',
    'Payroll export for ACME (employee salaries attached) shows the wrong totals.': 'bug',
}
#: The tickets tiny gets wrong once it regresses.
REGRESSED_ON = {
    'The app crashes every time I click Export to CSV.',
    'Sync has been stuck at 99% since Monday on two laptops.',
}
PROBLEMS = {
    'Ana has 3 boxes of 12 apples and gives away 7 apples. How many are left?': (29, ['3 x 12 = 36', '36 - 7 = 29']),
    'A train travels 90 km/h for 2 hours, then 60 km/h for 1 hour. How far does it go?': (
        240,
        ['90 x 2 = 180', '60 x 1 = 60', '180 + 60 = 240'],
    ),
    'Tickets cost 15 each; a group of 8 gets 2 tickets free. What does the group pay?': (
        90,
        ['8 - 2 = 6', '6 x 15 = 90'],
    ),
    'A book has 320 pages. Lea reads 25 pages a day for 8 days. How many pages remain?': (
        120,
        ['25 x 8 = 200', '320 - 200 = 120'],
    ),
    'Each of 6 nurses works 3 shifts of 8 hours a week. How many hours in total?': (
        144,
        ['3 x 8 = 24', '6 x 24 = 144'],
    ),
}
TICKET = 'The app crashes every time I click Export to CSV.'
PROBLEM = 'A train travels 90 km/h for 2 hours, then 60 km/h for 1 hour. How far does it go?'


def scripted(name: str, state: dict[str, Any]):
    """One provider: answers as the supervisor, the triage specialist, the analyst or the judge."""
    from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_results

    def answer(messages: list[Any], info: Any) -> Any:
        tools = {t.name for t in info.function_tools}
        prompt = last_user_prompt(messages)
        instructions = info.instructions or ''
        if 'delegate_to_triage' in tools:  # the supervisor
            results = tool_results(messages)
            if not results:
                return [delegate('triage', TICKET), delegate('analyst', PROBLEM)]
            return text(' / '.join(results))
        if 'grade an answer' in instructions:  # the judge: is the graded answer the right one?
            task = prompt.split('Task given to the model:\n', 1)[1].split('\n\nAnswer to grade:', 1)[0]
            graded = prompt.split('Answer to grade:\n', 1)[1]
            try:
                ok = json.loads(graded).get('answer') == PROBLEMS[task][0]
            except (ValueError, AttributeError, KeyError):
                ok = False
            return text(json.dumps({'passed': ok, 'score': 0.9 if ok else 0.2, 'reason': 'checked the arithmetic'}))
        if prompt in TRIAGE or 'Classify' in instructions:
            label = TRIAGE.get(prompt, 'question')
            if name == 'tiny' and state.get('tiny_regressed') and prompt in REGRESSED_ON:
                label = 'question'
            return text(label)
        value, steps = PROBLEMS.get(prompt, (0, ['?']))
        right = {'strong': True, 'mid': not prompt.startswith('Tickets'), 'tiny': prompt.startswith('Ana')}[name]
        return text(json.dumps({'answer': value if right else value + 10, 'steps': steps if right else steps[:1]}))

    return ScriptedModel(answer, name=name)


def build(state: dict[str, Any]):
    from proctor import ModelRouter

    return ModelRouter.from_file(CONFIG, models={m: scripted(m, state) for m in ('tiny', 'mid', 'strong')})


def router():
    """The example's router with the scripted models (`proctor eval run triage --router proctor.examples.evaluate_models:router`)."""
    return build({})


def report_table(report: Any) -> str:
    """The per-model table `proctor eval report` prints (markdown)."""
    from proctor.models._eval import report_rows

    columns, rows = report_rows(report.results)
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '|'.join('---' for _ in columns) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in r) + ' |' for r in rows]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--state-dir', default=None, help='state directory (default: a new temporary one)')
    args = ap.parse_args(argv)
    state_dir = args.state_dir or tempfile.mkdtemp(prefix='proctor-evaluate-')
    os.environ['PROCTOR_STATE_DIR'] = state_dir

    import anyio

    from proctor import Specialist, Supervisor, Team
    from proctor.models._eval import Evaluator
    from proctor.models._eval_store import EvalRecords, compare_runs
    from proctor.models._eval_suite import load_suite
    from proctor.state import StateStore
    from proctor.state._audit import audit_entries

    store = StateStore(state_dir)
    state: dict[str, Any] = {}
    router = build(state)
    router.evaluations.store = store  # route() outside a team run reads this store too
    evals = Path(router.evals_dir or HERE / 'evals')
    triage, reasoning = load_suite(evals / 'triage.toml'), load_suite(evals / 'reasoning.toml')
    evaluator = Evaluator(router, store)
    out: dict[str, Any] = {'state_dir': state_dir, 'routes': {}}

    def route(spec: Any, label: str) -> str:
        r = router.route(spec, data_class='internal', project='support', team='support')
        print(f'   {spec.name:8} -> {r.model_id:6}  {r.reason.split(";")[0].split(": ", 1)[1]}')
        out['routes'].setdefault(label, {})[spec.name] = r.model_id
        return r.model_id

    specs = [Specialist('triage', 'Classify the ticket.'), Specialist('analyst', 'Solve the problem.')]
    team = Team(Supervisor(), specs, name='support', router=router)

    print('== 1. before any evaluation')
    for s in specs:
        route(s, 'before')

    print('\n== 2. evaluate both suites on tiny, mid and strong')
    first = evaluator.run_sync(triage, concurrency=8)
    reason = evaluator.run_sync(reasoning, concurrency=8)
    for rep in (first, reason):
        print(f'\n{rep.suite} ({rep.run_id}; skipped: {rep.skipped or "none"})\n{report_table(rep)}')
    out['triage_table'] = report_table(first)
    out['reasoning_table'] = report_table(reason)
    print()
    for s in specs:
        route(s, 'evaluated')
    result = anyio.run(lambda: team.run('Handle this ticket and the capacity question.', project='support'))
    served = {d.specialist: (d.model_id, d.route_reason) for d in result.delegations}
    out['team_run'] = {k: v[0] for k, v in served.items()}
    decisions = [e for e in audit_entries(store, run_id=result.run_id) if e.kind == 'route_decision']
    print(f'   team run {result.run_id}: ' + ', '.join(f'{k} on {v[0]}' for k, v in served.items()))
    print(f'   audit: {len(decisions)} route_decision records (suite, pass rate, evaluation run)')
    out['audit_route_decisions'] = len(decisions)

    print('\n== 3. tiny regresses; the next triage evaluation catches it')
    state['tiny_regressed'] = True
    second = evaluator.run_sync(triage, concurrency=8)
    print(report_table(second))
    _, _, diff = compare_runs(EvalRecords(store), first.run_id, second.run_id)
    for d in diff:
        if d.status == 'regressed':
            print(
                f'   regression: {d.model_id} {d.pass_rate_a:.0%} -> {d.pass_rate_b:.0%}, newly failing {", ".join(d.newly_failing)}'
            )
    out['regressions'] = [d.model_id for d in diff if d.status == 'regressed']
    route(specs[0], 'regressed')

    print("\n== 4. tiny's provider ships a new version")
    from proctor import ModelRouter

    infos = {m: router.registry.get(m) for m in router.registry}
    infos['tiny'] = infos['tiny'].model_copy(update={'version': '2026-01-01'})
    upgraded = ModelRouter(infos, router.policy, evaluations=router.evaluations)
    r = upgraded.route(specs[0], data_class='internal', project='support', team='support')
    verdict = r.plan.evaluation['verdicts']['tiny']  # type: ignore[attr-defined]
    print(f'   triage   -> {r.model_id:6}  (tiny: {verdict})')
    out['routes']['new_version'] = {'triage': r.model_id}
    out['new_version_verdict'] = verdict
    print(f'\nstate: {state_dir}   (proctor --state-dir {state_dir} eval report)')
    return out


if __name__ == '__main__':
    main()
