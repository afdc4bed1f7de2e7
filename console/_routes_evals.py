"""Evaluations: per suite, each model's latest result and the cost/quality frontier, with the routing choice marked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..exceptions import ProctorError
from ..models._eval_store import EvalRecords
from ._eval_chart import frontier, frontier_svg
from ._http import JSONResponse, console_of, error_response, guarded, in_thread, render, wants_json

__all__ = ('routes',)


@dataclass(frozen=True)
class _Spec:
    """What the router reads of a specialist it plans for (the console has no team)."""

    name: str
    model: Any = None
    requires: tuple[str, ...] = ()
    fallback_models: tuple[Any, ...] = ()


def routing_choices(router: Any, suite: str) -> list[dict[str, Any]]:
    """Each specialist routed by `suite` (select = "cheapest-passing"): the model it gets now, per data
    class the policy names for it (default internal), and why."""
    if router is None:
        return []
    out = []
    targets = [
        (name, tuple(sp.requires), [*sp.data_classes])
        for name, sp in router.policy.specialists.items()
        if sp.select == 'cheapest-passing' and sp.suite == suite
    ]
    targets += [
        (f'any requiring {cap}', (cap,), [])
        for cap, cp in router.policy.capabilities.items()
        if cp.select == 'cheapest-passing' and cp.suite == suite
    ]
    for name, requires, classes in targets:
        for dc in dict.fromkeys([*classes, *router.policy.data_classes]) or ['internal']:
            sp = router.policy.specialists.get(name) or router.policy.capabilities[requires[0]]
            try:
                plan = router.plan(_Spec(name, requires=requires), data_class=dc, project='', team='')
            except ProctorError as e:
                out.append({'specialist': name, 'data_class': dc, 'model_id': None, 'reason': str(e), 'passing': False})
                continue
            ev = plan.evaluation or {}
            out.append(
                {
                    'specialist': name,
                    'data_class': dc,
                    'model_id': plan.primary,
                    'reason': plan.reason,
                    'passing': ev.get('chosen') is not None,
                    'min_pass_rate': sp.min_pass_rate,
                    'max_age': sp.max_age,
                }
            )
    return out


def _suite_view(store: Any, router: Any, suite: str) -> dict[str, Any]:
    records = EvalRecords(store)
    latest = sorted(records.latest(suite).values(), key=lambda r: (r.cost_per_case, r.model_id))
    runs = records.runs(suite=suite, limit=20)
    choices = routing_choices(router, suite)
    points = [r.to_json() for r in latest]
    return {
        'suite': suite,
        'latest': points,
        'runs': [r.to_json() for r in runs],
        'routing': choices,
        'frontier': frontier(points),
    }


@guarded
async def evaluations(request: Request) -> Response:
    """`?suite=NAME`: that suite (default: the first evaluated)."""
    c = console_of(request)
    router = getattr(request.app.state, 'eval_router', None)
    suites = await in_thread(lambda: EvalRecords(c.store).suites())
    suite = request.query_params.get('suite') or (suites[0] if suites else None)
    if suite is not None and suite not in suites:
        return error_response(request, 404, f'no evaluation of suite {suite!r} recorded')
    view = await in_thread(_suite_view, c.store, router, suite) if suite else None
    if wants_json(request):
        return JSONResponse({'suites': suites, 'suite': view})
    chart = ''
    if view is not None:
        chosen: dict[str, str] = {}
        for ch in view['routing']:
            if ch['model_id'] and ch['passing']:
                label = f'{ch["specialist"]} ({ch["data_class"]})'
                chosen[ch['model_id']] = chosen[ch['model_id']] + ', ' + label if ch['model_id'] in chosen else label
        bars = {ch['min_pass_rate'] for ch in view['routing'] if ch.get('min_pass_rate') is not None}
        chart = frontier_svg(view['latest'], chosen=chosen, min_pass_rate=min(bars) if bars else None)
    return render(
        request,
        'evals.html',
        {'suites': suites, 'view': view, 'chart': Markup(chart), 'has_router': router is not None, 'page': 'evals'},
    )


def routes() -> list[Route]:
    return [Route('/evals', evaluations), Route('/api/evals', evaluations)]
