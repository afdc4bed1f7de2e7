"""The approval inbox: pending approvals (live), decisions, and the history of decided ones."""

from __future__ import annotations

from urllib.parse import quote

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..exceptions import UnknownApprovalError
from ._http import JSONResponse, console_of, error_response, guarded, in_thread, render, wants_json
from ._inbox import DecisionRefused

__all__ = ('routes',)

MAX_REASON = 2000
log = structlog.get_logger('proctor.console')


@guarded
async def inbox(request: Request) -> Response:
    """Pending approvals newest first, then the decided ones."""
    c = console_of(request)
    pending = await in_thread(c.inbox.pending)
    history = await in_thread(c.inbox.history)
    flash = None
    if request.query_params.get('decided'):  # after a decision: say what happened, from the record itself
        try:
            done = await in_thread(c.inbox.get, request.query_params['decided'])
            flash = f'Approval {done.approval_id} ({done.tool}) {done.status} by {done.decider}.'
        except UnknownApprovalError:
            pass
    return render(request, 'inbox.html', {'pending': pending, 'history': history, 'flash': flash, 'page': 'approvals'})


@guarded
async def pending_fragment(request: Request) -> Response:
    """The pending cards alone: the inbox script swaps new ones in without a reload."""
    c = console_of(request)
    return render(request, '_pending.html', {'pending': await in_thread(c.inbox.pending)})


@guarded
async def detail(request: Request) -> Response:
    c = console_of(request)
    try:
        a = await in_thread(c.inbox.get, request.path_params['approval_id'])
    except UnknownApprovalError as e:
        return error_response(request, 404, str(e))
    if wants_json(request):
        return JSONResponse(a.to_json())
    return render(request, 'approval.html', {'a': a, 'page': 'approvals'})


@guarded
async def api_list(request: Request) -> Response:
    """`?status=pending` (default) or `?status=decided`; `since` (epoch s) keeps only newer ones."""
    c = console_of(request)
    which = request.query_params.get('status', 'pending')
    if which not in ('pending', 'decided'):
        return error_response(request, 400, f'status must be pending or decided, not {which!r}')
    views = await in_thread(c.inbox.pending if which == 'pending' else c.inbox.history)
    return JSONResponse({'approvals': [v.to_json() for v in views]})


def _decide(approve: bool):
    async def decide(request: Request) -> Response:
        c = console_of(request)
        approval_id = request.path_params['approval_id']
        if request.headers.get('content-type', '').startswith('application/json'):
            try:
                body = await request.json()
            except ValueError:
                return error_response(request, 400, 'the request body is not valid JSON')
            reason = body.get('reason', '') if isinstance(body, dict) else ''
        else:
            reason = (await request.form()).get('reason', '')
        reason = reason.strip() if isinstance(reason, str) else ''
        if len(reason) > MAX_REASON:
            return error_response(request, 400, f'reason is {len(reason)} characters, over the limit of {MAX_REASON}')
        if not approve and not reason:
            return error_response(request, 400, 'a rejection needs a reason')
        op = request.state.session.operator
        try:
            view = await in_thread(c.inbox.decide, approval_id, approve=approve, operator=op, reason=reason)
        except DecisionRefused as e:
            log.info(
                'console.decision_refused', approval_id=approval_id, operator=op.name, status=e.status, why=e.message
            )
            return error_response(request, e.status, e.message)
        log.info('console.decided', approval_id=approval_id, operator=op.name, status=view.status)
        if wants_json(request):
            return JSONResponse(view.to_json())
        return RedirectResponse(f'/approvals?decided={quote(approval_id)}', status_code=303)

    decide.__name__ = 'approve' if approve else 'reject'
    return guarded(decide)


def routes() -> list[Route]:
    approve, reject = _decide(True), _decide(False)
    return [
        Route('/approvals', inbox),
        Route('/approvals/pending.html', pending_fragment),
        Route('/approvals/{approval_id}', detail),
        Route('/approvals/{approval_id}/approve', approve, methods=['POST']),
        Route('/approvals/{approval_id}/reject', reject, methods=['POST']),
        Route('/api/approvals', api_list),
        Route('/api/approvals/{approval_id}', detail),
        Route('/api/approvals/{approval_id}/approve', approve, methods=['POST']),
        Route('/api/approvals/{approval_id}/reject', reject, methods=['POST']),
    ]
