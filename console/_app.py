"""`create_app(store, operators=...)`: the console's Starlette app over one state store.

Every page and API route needs a signed-in operator: without a session an HTML page redirects to
`/login` and an `/api/` route answers 401. Every POST must carry the session's CSRF token (form
field `csrf_token` or header `X-CSRF-Token`) or it is refused with 403 before anything changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..state._store import StateStore
from . import _routes_approvals, _routes_auth, _routes_evals, _routes_runs, _routes_usage
from ._auth import SessionSigner, load_secret, operators_from
from ._data import ConsoleData
from ._http import HERE, ConsoleState, JSONResponse, SecurityHeaders, error_response, templates
from ._inbox import Inbox

__all__ = ('create_app',)


def create_app(
    store: StateStore | None = None,
    *,
    operators: Any = None,
    secret_key: bytes | None = None,
    secure_cookies: bool = False,
    config: str | os.PathLike[str] | None = None,
    replay_timeout_s: float = 60.0,
    router: Any = None,
) -> Starlette:
    """The console as an ASGI app over one state store.

    `operators`: a `proctor.toml` path, a mapping of name -> `Operator` (or `{token_sha256, roles}`
    tables), or a list of `Operator`s; default: the `[operators.*]` of `config` (default
    `./proctor.toml` when it exists). `secret_key` signs session cookies (default: `console.key` in
    the state dir, so sessions survive a restart). `secure_cookies=True` marks cookies HTTPS-only
    (set it behind a TLS proxy). `replay_timeout_s` stops a replay that runs longer. `router` (a
    `ModelRouter`; default: the one `config` describes, when it has `[models]`) marks the routing choice
    on the Evaluations page.
    """
    store = store or StateStore()
    if operators is None:
        path = Path(config) if config is not None else Path('proctor.toml')
        operators = path if (config is not None or path.exists()) else {}
    ops = operators_from(operators)
    signer = SessionSigner(secret_key or load_secret(store.state_dir), ops)
    state = ConsoleState(
        store=store,
        operators=ops,
        signer=signer,
        templates=templates(),
        data=ConsoleData(store),
        inbox=Inbox(store),
        secure_cookies=secure_cookies,
        replay_timeout_s=replay_timeout_s,
    )

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        detail = exc.detail if isinstance(exc, HTTPException) else 'not found'
        return error_response(request, status, str(detail))

    routes = [
        *_routes_auth.routes(),
        *_routes_approvals.routes(),
        *_routes_runs.routes(),
        *_routes_usage.routes(),
        *_routes_evals.routes(),
        Route('/healthz', lambda r: JSONResponse({'ok': True})),
        Mount('/static', app=StaticFiles(directory=HERE / 'static'), name='static'),
    ]
    app = Starlette(
        routes=routes, middleware=[Middleware(SecurityHeaders)], exception_handlers={404: not_found, 405: not_found}
    )
    app.state.console = state
    app.state.eval_router = _eval_router(router, config, store)
    return app


def _eval_router(router: Any, config: str | os.PathLike[str] | None, store: StateStore) -> Any:
    """The router whose evaluation-driven choices the Evaluations page marks (reading this store)."""
    import tomllib

    from ..exceptions import ProctorError
    from ..models._eval_route import EvalSelector
    from ..models._router import ModelRouter

    if router is None:
        path = Path(config) if config is not None else Path('proctor.toml')
        try:
            if not path.is_file() or 'models' not in tomllib.loads(path.read_text()):
                return None
            router = ModelRouter.from_file(path)
        except (OSError, ValueError, ProctorError):
            return None  # the operators' file may hold no registry: the page says no policy is loaded
    router.evaluations = EvalSelector(store, refresh_s=5.0)
    return router
