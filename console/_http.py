"""The console's shared request plumbing: its state, the operator and CSRF guard, responses, templates.

Every page and API route needs a signed-in operator: without a session an HTML page redirects to
`/login` and an `/api/` route answers 401. Every POST must carry the session's CSRF token (form
field `csrf_token` or header `X-CSRF-Token`) or it is refused with 403 before anything changes.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import anyio.to_thread
import jinja2
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse as _JSONResponse
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core._format import human_duration
from ..state._store import StateStore
from ._auth import Operator, Session, SessionSigner
from ._data import ConsoleData
from ._inbox import Inbox

__all__ = (
    'ConsoleState',
    'SESSION_COOKIE',
    'HERE',
    'JSONResponse',
    'SecurityHeaders',
    'console_of',
    'guarded',
    'render',
    'error_response',
    'in_thread',
    'templates',
    'wants_json',
)

HERE = Path(__file__).parent
SESSION_COOKIE = 'proctor_session'
log = structlog.get_logger('proctor.console')

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class ConsoleState:
    """What every route reads from `request.app.state.console`."""

    store: StateStore
    operators: dict[str, Operator]
    signer: SessionSigner
    templates: Jinja2Templates
    data: ConsoleData
    inbox: Inbox
    secure_cookies: bool
    replay_timeout_s: float
    replays: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> last replay outcome


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Blocking database work off the event loop."""
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


def console_of(request: Request) -> ConsoleState:
    return request.app.state.console


class JSONResponse(_JSONResponse):
    """JSON that also renders datetimes and other odd values (as strings) instead of failing."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, ensure_ascii=False, separators=(',', ':')).encode()


def wants_json(request: Request) -> bool:
    if request.url.path.startswith('/api/'):
        return True
    accept = request.headers.get('accept', '')
    return 'application/json' in accept and 'text/html' not in accept


def render(request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200) -> Response:
    c = console_of(request)
    session: Session | None = getattr(request.state, 'session', None)
    ctx = {
        'session': session,
        'operator': session.operator if session else None,
        'csrf': session.csrf if session else '',
    }
    return c.templates.TemplateResponse(request, name, {**ctx, **(context or {})}, status_code=status_code)


def error_response(request: Request, status: int, message: str, **extra: Any) -> Response:
    """A JSON error for API callers, an error page for browsers; the message is one readable line."""
    if wants_json(request):
        return JSONResponse({'error': message, **extra}, status_code=status)
    return render(request, 'error.html', {'status': status, 'message': message}, status_code=status)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get('origin')
    if not origin or origin == 'null':
        return origin is None
    return urlsplit(origin).netloc == request.headers.get('host', '')


def guarded(fn: Endpoint) -> Endpoint:
    """Require a session (401 / redirect to login); on POST also a matching CSRF token and same origin (403)."""

    async def endpoint(request: Request) -> Response:
        c = console_of(request)
        session = c.signer.read(request.cookies.get(SESSION_COOKIE))
        if session is None:
            if wants_json(request):
                return JSONResponse({'error': 'not signed in'}, status_code=401)
            target = request.url.path + (f'?{request.url.query}' if request.url.query else '')
            return RedirectResponse(f'/login?next={quote(target)}', status_code=303)
        request.state.session = session
        if request.method == 'POST':
            token = request.headers.get('x-csrf-token')
            if token is None:
                form = await request.form()
                token = form.get('csrf_token') if isinstance(form.get('csrf_token'), str) else None
            if not token or not hmac.compare_digest(str(token), session.csrf) or not _same_origin(request):
                log.warning('console.csrf_refused', operator=session.operator.name, path=request.url.path)
                return error_response(request, 403, 'CSRF check failed: reload the page and try again')
        return await fn(request)

    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint


class SecurityHeaders:
    """Same-origin everything: no inline scripts, no framing, no sniffing, nothing loaded from elsewhere."""

    CSP = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message['type'] == 'http.response.start':
                headers = list(message.get('headers', []))
                headers += [
                    (b'content-security-policy', self.CSP.encode()),
                    (b'x-content-type-options', b'nosniff'),
                    (b'x-frame-options', b'DENY'),
                    (b'referrer-policy', b'same-origin'),
                    (b'cache-control', b'no-store'),
                ]
                message['headers'] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _when(ts: float | None) -> str:
    return '–' if ts is None else dt.datetime.fromtimestamp(ts).strftime('%Y-%m-%d %H:%M:%S')


def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / 'templates'), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters['when'] = _when
    env.filters['duration'] = human_duration
    env.filters['since'] = lambda ts: human_duration(None if ts is None else time.time() - ts)
    env.filters['duration_ms'] = lambda ms: human_duration(None if ms is None else ms / 1000)
    env.filters['usd'] = lambda v: f'${(v or 0):.4f}'
    env.filters['num'] = lambda v: f'{(v or 0):,}'
    return Jinja2Templates(env=env)
