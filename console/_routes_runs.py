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


#: How an approval's status reads: a pending one is waiting for an operator, not approved.
APPROVAL_WORDING = {
    'pending': 'waiting for operator',
    'approved': 'approved',
    'rejected': 'rejected',
    'expired': 'expired',
}


def approval_wording(a: dict[str, Any]) -> str:
    """`waiting for operator`, `approved by alice`, `rejected by bob`, `expired`."""
    status = str(a.get('status'))
    if status == 'pending' and a.get('expires_at') is not None and a['expires_at'] <= time.time():
        status = 'expired'
    words = APPROVAL_WORDING.get(status, status)
    return f'{words} by {a["decider"]}' if status in ('approved', 'rejected') and a.get('decider') else words


def _decisions(guard_events: list[dict[str, Any]], approvals: list[dict[str, Any]]) -> None:
    """What each guardrail decision led to (`shown`): a decision that asked for an approval reads as
    that approval's state (waiting for operator, approved by ..., rejected by ...), not as 'approve'."""
    for a in approvals:
        a['shown'] = approval_wording(a)
    unmatched = sorted(approvals, key=lambda a: a['created_at'])
    for g in guard_events:
        if g['decision'] != 'approve':
            g['shown'] = g['decision']
            continue
        a = next((x for x in unmatched if x['agent_path'] == g['agent_path']), None)
        if a is not None:
            unmatched.remove(a)
        g['shown'] = 'needs approval' if a is None else f'needs approval: {a["shown"]}'
        g['approval_id'] = None if a is None else a['approval_id']


async def _load_run(request: Request) -> tuple[Any, dict[str, Any]]:
    c = console_of(request)

    def load() -> tuple[Any, dict[str, Any]]:
        rec = RunRecords(c.store).get(request.path_params['run_id'])
        spans = c.data.spans_of(rec.run_id, rec.trace_id)
        guards, approvals = c.data.guard_events_of(rec.run_id), c.data.approvals_of(rec.run_id)
        _decisions(guards, approvals)
        return rec, {'spans': spans, 'guard_events': guards, 'approvals': approvals}

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
    # A finished run's spans that never ended (their process stopped) end with the run on the axis.
    end_ns = None if rec.finished_at is None else int(rec.finished_at * 1e9)
    waterfall = layout(extra['spans'] or spans_from_records(rec), now_ns=end_ns)
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
