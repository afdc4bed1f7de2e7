"""`proctor console` (the web console) and `proctor operator-token` (a new sign-in token for it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app, state_from_ctx

LOOPBACK = frozenset({'127.0.0.1', 'localhost', '::1'})


@app.command('console')
def console(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help='Interface to bind; anything but loopback exposes the console to the network.')
    ] = '127.0.0.1',
    port: Annotated[int, typer.Option(help='TCP port.', min=0, max=65535)] = 8400,
    config: Annotated[
        Path | None,
        typer.Option('--config', help='TOML file with the [operators.*] tables (default: ./proctor.toml).'),
    ] = None,
    secure_cookies: Annotated[
        bool, typer.Option('--secure-cookies', help='HTTPS-only cookies (behind a TLS proxy).')
    ] = False,
) -> None:
    """Serve the web console: approval inbox, runs and traces, usage."""
    import uvicorn

    from ..console import create_app
    from ..exceptions import ConfigError

    path = config or Path('proctor.toml')
    if not path.exists():
        raise ConfigError(
            'file not found: the console needs [operators.NAME] tables (proctor operator-token NAME)', file=str(path)
        )
    web = create_app(state_from_ctx(ctx, create=True), config=path, secure_cookies=secure_cookies)
    if not web.state.console.operators:
        raise ConfigError(
            'no [operators.NAME] tables: nobody could sign in (proctor operator-token NAME)', file=str(path)
        )
    if host not in LOOPBACK:
        typer.secho(
            f'warning: binding to {host}: the console is reachable from the network; put it behind TLS '
            '(and pass --secure-cookies) or bind to 127.0.0.1',
            err=True,
            fg='yellow',
        )
    n = len(web.state.console.operators)
    where = f'[{host}]' if ':' in host else host
    typer.echo(f'proctor console on http://{where}:{port}/ ({n} operator{"s" if n != 1 else ""} from {path})', err=True)
    uvicorn.run(web, host=host, port=port, log_level='warning', access_log=False, server_header=False)


@app.command('operator-token')
def operator_token(
    name: Annotated[str, typer.Argument(help='The operator (letters, digits, _.@-).')],
    role: Annotated[
        list[str] | None,
        typer.Option('--role', help='A role the operator holds (repeat for several; default operator).'),
    ] = None,
) -> None:
    """Make a new sign-in token: prints it once, and the [operators.NAME] table (hash only) for proctor.toml."""
    import json
    import secrets

    from ..console._auth import _NAME, hash_token
    from ..exceptions import UserError

    if role is None:
        role = ['operator']
    if not _NAME.match(name):
        raise UserError(f'operator name {name!r}: use letters, digits and _.@-')
    token = secrets.token_urlsafe(32)
    typer.echo(f'token for {name} (shown once; give it to them, do not store it): {token}', err=True)
    typer.echo(f'[operators.{name}]\ntoken_sha256 = "{hash_token(token)}"\nroles = {json.dumps(sorted(set(role)))}')
