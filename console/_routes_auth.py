"""Sign in with a token, sign out, and the landing redirect."""

from __future__ import annotations

import hmac
import secrets

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ._http import SESSION_COOKIE, console_of, guarded, render

__all__ = ('routes',)

LOGIN_CSRF_COOKIE = 'proctor_login_csrf'
log = structlog.get_logger('proctor.console')


def _safe_next(target: str | None) -> str:
    # only paths on this site: never '//evil.example' or 'https://...'
    if not target or not target.startswith('/') or target.startswith('//') or '\\' in target:
        return '/approvals'
    return target


def _login_page(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    c = console_of(request)
    token = secrets.token_urlsafe(24)
    resp = render(
        request,
        'login.html',
        {
            'login_csrf': token,
            'error': error,
            'next': _safe_next(request.query_params.get('next')),
            'no_operators': not c.operators,
        },
        status_code=status_code,
    )
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite='strict', secure=c.secure_cookies, path='/login')
    return resp


async def login_form(request: Request) -> Response:
    return _login_page(request)


async def login(request: Request) -> Response:
    """Check the token; on success set the signed session cookie and go to `next`."""
    c = console_of(request)
    form = await request.form()
    sent, cookie = str(form.get('login_csrf', '')), request.cookies.get(LOGIN_CSRF_COOKIE, '')
    if not sent or not cookie or not hmac.compare_digest(sent, cookie):
        return _login_page(request, error='The sign-in form expired: try again.', status_code=403)
    op = c.signer.authenticate(str(form.get('token', '')).strip())
    if op is None:
        log.warning('console.sign_in_failed', client=request.client.host if request.client else None)
        return _login_page(request, error='Unknown token.', status_code=401)
    value, session = c.signer.issue(op)
    log.info('console.signed_in', operator=op.name, roles=sorted(op.roles))
    resp = RedirectResponse(_safe_next(str(form.get('next', ''))), status_code=303)
    resp.set_cookie(
        SESSION_COOKIE, value, max_age=int(c.signer.ttl_s), httponly=True, samesite='lax', secure=c.secure_cookies
    )
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path='/login')
    return resp


@guarded
async def logout(request: Request) -> Response:
    resp = RedirectResponse('/login', status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


@guarded
async def home(request: Request) -> Response:
    return RedirectResponse('/approvals', status_code=303)


def routes() -> list[Route]:
    return [
        Route('/', home),
        Route('/login', login_form, methods=['GET']),
        Route('/login', login, methods=['POST']),
        Route('/logout', logout, methods=['POST']),
    ]
