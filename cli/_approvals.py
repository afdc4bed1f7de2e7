"""`proctor approvals list|show|approve|reject`: the operator's side of approval checkpoints.

Who decides: `$PROCTOR_OPERATOR` (default: the login name). Their roles: `$PROCTOR_ROLES`
(comma-separated) if set, else `roles` of `[operators.<name>]` in the config (`--config`,
`$PROCTOR_CONFIG` or `./proctor.toml`). The CLI acts for whoever can write the state database; the console checks
sign-in tokens. A decision without the required role, or on an unknown, expired or already decided
approval, is a one-line error and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import app, state_from_ctx

approvals_app = typer.Typer(help='Approval checkpoints: list, show, approve, reject.', no_args_is_help=True)
app.add_typer(approvals_app, name='approvals')


def _when(ts: float | None) -> str:
    return '-' if ts is None else dt.datetime.fromtimestamp(ts).strftime('%Y-%m-%d %H:%M:%S')


def _status(a: Any) -> str:
    return 'expired' if a.expired_at() else a.status


def _short(value: Any, n: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    text = ' '.join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + '…'


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        '--config', help='proctor.toml with [operators.NAME] roles (default: $PROCTOR_CONFIG or ./proctor.toml).'
    ),
]


def operator(config: Path | None = None) -> tuple[str, frozenset[str]]:
    """The deciding operator's name and roles (see the module docstring)."""
    from ..exceptions import ConfigError
    from ..guardrails._config import operator_roles

    name = (os.environ.get('PROCTOR_OPERATOR') or '').strip() or getpass.getuser()
    env = os.environ.get('PROCTOR_ROLES')
    if env is not None:
        roles = frozenset(r.strip() for r in env.split(',') if r.strip())
    else:
        roles = operator_roles(name, config) or frozenset()
    if not roles:
        raise ConfigError(
            f'operator {name!r} has no roles: set PROCTOR_ROLES (e.g. PROCTOR_ROLES=operator) or add roles to '
            f'[operators.{name}] in proctor.toml'
        )
    return name, roles


def _queue(ctx: typer.Context) -> Any:
    from ..guardrails._approvals import ApprovalQueue

    return ApprovalQueue(state_from_ctx(ctx))


@approvals_app.command('list')
def list_approvals(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Option('--run', help='Only this run (id or unique prefix).')] = None,
    status: Annotated[str | None, typer.Option(help='pending, approved, rejected or expired.')] = None,
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
    limit: Annotated[int, typer.Option(help='How many, newest first.')] = 100,
) -> None:
    """List approvals, newest first (pending ones first of all)."""
    items = _queue(ctx).list(run_id=run, status=status, limit=limit)
    if run is not None and not items:
        from ..state._records import RunRecords

        RunRecords(state_from_ctx(ctx)).get(run, with_delegations=False)  # nothing to list: is the run unknown?
    items.sort(key=lambda a: (not a.pending, -a.created_at))
    if as_json:
        typer.echo(json.dumps([{**a.to_json(), 'status': _status(a)} for a in items], default=str))
        return
    if not items:
        typer.echo('no approvals' + (f' for run {run}' if run else ''))
        return
    from ._output import print_table

    print_table(
        ('approval', 'status', 'kind', 'run', 'agent', 'tool', 'role', 'created', 'expires', 'args'),
        [
            (
                a.approval_id,
                _status(a),
                a.kind,
                a.run_id[:12],
                a.agent_path,
                a.tool,
                a.required_role,
                _when(a.created_at),
                _when(a.expires_at),
                _short(a.args, 200),
            )
            for a in items
        ],
        flex='args',
    )


@approvals_app.command('show')
def show_approval(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(help='Approval id (or a unique prefix).')],
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
) -> None:
    """One approval: what is asked, by which run and agent, why, and what was decided."""
    a = _queue(ctx).get(approval_id)
    if as_json:
        typer.echo(json.dumps({**a.to_json(), 'status': _status(a)}, default=str))
        return
    left = '' if a.expires_at is None or not a.pending else f' ({max(0, a.expires_at - time.time()) / 60:.0f} min left)'
    lines = [
        f'approval   {a.approval_id}  [{_status(a)}]  kind={a.kind}',
        f'run        {a.run_id}  agent {a.agent_path}  data class {a.data_class}',
        f'tool       {a.tool}',
        f'why        {a.reason_required or "-"}',
        f'role       {a.required_role}',
        f'created    {_when(a.created_at)}   expires {_when(a.expires_at)}{left}',
        'arguments  ' + json.dumps(a.args, indent=2, sort_keys=True, default=str).replace('\n', '\n           '),
    ]
    if not a.pending:
        lines.append(
            f'decided    {a.status} by {a.decider} ({a.decider_role}) at {_when(a.decided_at)}: {a.reason or "-"}'
        )
    typer.echo('\n'.join(lines))


def _decide(ctx: typer.Context, approval_id: str, approve: bool, reason: str, config: Path | None) -> None:
    name, roles = operator(config)
    q = _queue(ctx)
    if approve:
        a = q.approve(approval_id, decider=name, roles=roles, reason=reason)
    else:
        a = q.reject(approval_id, decider=name, roles=roles, reason=reason)
    typer.echo(
        f'{a.approval_id} {a.status} by {a.decider} ({a.decider_role}) for run {a.run_id}'
        + ('' if not reason else f': {reason}')
    )


@approvals_app.command('approve')
def approve(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(help='Approval id (or a unique prefix).')],
    note: Annotated[str, typer.Option('--note', help='Why (recorded with the decision).')] = '',
    config: ConfigOption = None,
) -> None:
    """Approve a pending approval: the waiting tool call runs."""
    _decide(ctx, approval_id, True, note, config)


@approvals_app.command('reject')
def reject(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(help='Approval id (or a unique prefix).')],
    reason: Annotated[str, typer.Option('--reason', help='Why (the agent is told).')] = '',
    config: ConfigOption = None,
) -> None:
    """Reject a pending approval: the agent is told why (or the run stops, if its policy says so)."""
    if not reason.strip():
        from ..exceptions import UserError

        raise UserError('a rejection needs --reason (the agent is told why)')
    _decide(ctx, approval_id, False, reason, config)
