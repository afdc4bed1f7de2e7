"""Runs: the list, one run's page (waterfall trace, agent outputs, guardrail and approval events) and replay."""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..exceptions import UnknownRunError
from ..state._records import RunRecords
from ._http import JSONResponse, console_of, error_response, guarded, in_thread, render, wants_json
from ._replay import replay_run
from ._waterfall import layout, spans_from_records

__all__ = ('routes',)

log = structlog.get_logger('proctor.console')


def _limit(request: Request) -> int:
    try:
        return max(1, min(int(request.query_params.get('limit', 100)), 1000))
    except ValueError:
        return 100


@guarded
async def runs_list(request: Request) -> Response:
    c = console_of(request)
    q = request.query_params
    filters = {k: q.get(k) or None for k in ('status', 'team', 'project')}
    recs = await in_thread(c.data.list_runs, limit=_limit(request), **filters)
    if wants_json(request):
        return JSONResponse({'runs': [_run_json(r) for r in recs]})
    facets = await in_thread(c.data.facets)
    return render(request, 'runs.html', {'runs': recs, 'filters': filters, 'facets': facets, 'page': 'runs'})


def _run_json(rec: Any) -> dict[str, Any]:
    d = rec.to_json()
    if not rec.delegations:
        d.pop('delegations', None)
    return d


async def _load_run(request: Request) -> tuple[Any, dict[str, Any]]:
    c = console_of(request)

    def load() -> tuple[Any, dict[str, Any]]:
        rec = RunRecords(c.store).get(request.path_params['run_id'])
        c.data.fill_live_usage([rec])
        spans = c.data.spans_of(rec.run_id, rec.trace_id)
        return rec, {
            'spans': spans,
            'guard_events': c.data.guard_events_of(rec.run_id),
            'approvals': c.data.approvals_of(rec.run_id),
        }

    return await in_thread(load)


@guarded
async def run_page(request: Request) -> Response:
    c = console_of(request)
    try:
        rec, extra = await _load_run(request)
    except UnknownRunError as e:
        return error_response(request, 404, str(e))
    if wants_json(request):
        return JSONResponse({**rec.to_json(), **extra, 'replay': c.replays.get(rec.run_id)})
    source = 'spans' if extra['spans'] else 'records'
    waterfall = layout(extra['spans'] or spans_from_records(rec))
    return render(
        request,
        'run.html',
        {
            'run': rec,
            'waterfall': waterfall,
            'guard_events': extra['guard_events'],
            'approvals': extra['approvals'],
            'replay': c.replays.get(rec.run_id),
            'trace_source': source,
            'page': 'runs',
        },
    )


@guarded
async def replay(request: Request) -> Response:
    """Replay the run from its recordings with no live model call, and keep whether it matched."""
    c = console_of(request)
    try:
        rec = await in_thread(RunRecords(c.store).get, request.path_params['run_id'], with_delegations=False)
    except UnknownRunError as e:
        return error_response(request, 404, str(e))
    op = request.state.session.operator
    started = time.perf_counter()
    outcome = await replay_run(c.store, rec, timeout_s=c.replay_timeout_s)
    outcome |= {'by': op.name, 'at': time.time(), 'elapsed_s': time.perf_counter() - started}
    c.replays[rec.run_id] = outcome
    log.info('console.replayed', run_id=rec.run_id, operator=op.name, matched=outcome['matched'])
    if wants_json(request):
        return JSONResponse(outcome)
    return RedirectResponse(f'/runs/{rec.run_id}#replay', status_code=303)


def routes() -> list[Route]:
    return [
        Route('/runs', runs_list),
        Route('/runs/{run_id}', run_page),
        Route('/runs/{run_id}/replay', replay, methods=['POST']),
        Route('/api/runs', runs_list),
        Route('/api/runs/{run_id}', run_page),
        Route('/api/runs/{run_id}/replay', replay, methods=['POST']),
    ]
