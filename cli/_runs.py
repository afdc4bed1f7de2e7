"""`proctor runs list|show` and `proctor resume`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer

from ._app import app, state_from_ctx

runs_app = typer.Typer(help='Team runs recorded in the state store.', no_args_is_help=True)
app.add_typer(runs_app, name='runs')


def _when(ts: float | None) -> str:
    return '-' if ts is None else dt.datetime.fromtimestamp(ts).strftime('%Y-%m-%d %H:%M:%S')


def _dur(s: float | None) -> str:
    from ..core._format import human_duration

    return human_duration(s, missing='-')


def _run_dur(r: Any) -> str:
    """A finished run's duration; a running or waiting one's time so far (`4 min 50 s so far`)."""
    if r.finished_at is None and r.status in ('running', 'waiting'):
        import time

        return f'{_dur(time.time() - r.started_at)} so far'
    return _dur(r.duration_s)


def _short(value: Any, n: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = ' '.join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + '…'


@runs_app.command('list')
def list_runs(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
    limit: Annotated[int, typer.Option(help='How many runs, newest first.')] = 50,
    status: Annotated[str | None, typer.Option(help='Only runs with this status.')] = None,
) -> None:
    """List runs, newest first."""
    from ..state._records import RunRecords

    recs = RunRecords(state_from_ctx(ctx)).list(limit=limit, status=status)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in recs], default=str))
        return
    if not recs:
        typer.echo('no runs' + (f' with status {status!r}' if status else ''))
        return
    from ._output import print_table

    print_table(
        ('run', 'team', 'project', 'status', 'started', 'duration', 'tokens', 'cost $', 'task'),
        [
            (
                r.run_id[:12],
                r.team,
                r.project,
                r.status,
                _when(r.started_at),
                _run_dur(r),
                str(r.input_tokens + r.output_tokens),
                f'{r.cost_usd:.4f}',
                _short(r.task, 200),
            )
            for r in recs
        ],
        flex='task',
        right=('duration', 'tokens', 'cost $'),
    )


@runs_app.command('show')
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help='Run id (or a unique prefix).')],
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document (with every delegation).')] = False,
    follow: Annotated[
        bool,
        typer.Option('--follow', '-f', help='Wait until the run finishes (a submitted run), printing status changes.'),
    ] = False,
) -> None:
    """One run: its task, status, delegations (specialist, model, tokens, result) and final output."""
    from ..state._records import RunRecords, lead_delegation

    if follow:
        from ..state._queue import wait_for_run

        def on_status(rec: Any) -> None:
            typer.echo(f'{rec.run_id} {rec.status}', err=True)

        wait_for_run(state_from_ctx(ctx), run_id, on_status=on_status)
    r = RunRecords(state_from_ctx(ctx)).get(run_id)
    if as_json:
        typer.echo(json.dumps(r.to_json(), default=str))
        return
    from rich.markup import escape as e
    from rich.tree import Tree

    from ._output import console

    so_far = ' so far' if r.finished_at is None else ''  # a running or waiting run: what it spent until now
    tree = Tree(
        f'[bold]{r.run_id}[/] {e(r.team)}/{e(r.project)} \\[{e(r.data_class)}] [bold]{e(r.status)}[/] '
        f'{_run_dur(r)} tokens {r.input_tokens}+{r.output_tokens} in {r.requests} requests '
        f'${r.cost_usd:.4f}{so_far}'
    )
    tree.add(f'task: {e(_short(r.task, 200))}')
    if r.model_id or r.preferred_model:
        tree.add(f'supervisor: {e(r.route)}')
    nodes: dict[str, Tree] = {}  # a sub-team's delegations under their lead's
    for d in r.delegations:
        lead = lead_delegation(d.delegation_id, nodes)
        branch = nodes[d.delegation_id] = (nodes[lead] if lead is not None else tree).add(
            f'{e(d.agent_path)} \\[{e(d.status)}] model={e(str(d.model_id))} tokens {d.input_tokens}+{d.output_tokens} '
            f'{_dur(None if d.finished_at is None else d.finished_at - d.started_at)}: {e(_short(d.subtask, 60))} → '
            f'{e(_short(d.output if d.error is None else d.error, 80))}'
        )
        branch.add(f'route: {e(d.route)}')  # its sub-team's delegations follow, under it too
    if r.error:
        tree.add(f'[red]error: {e(_short(r.error, 300))}[/]')
    if r.output is not None:
        tree.add(f'output: {e(_short(r.output, 400))}')
    console().print(tree)


@app.command('resume')
def resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help='The interrupted run.')],
    team: Annotated[
        str | None,
        typer.Option(help="Team factory 'module:callable' or 'file.py:callable' (default: the recorded one)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option('--force', help='Resume even if the process holding the run cannot be checked (another host).'),
    ] = False,
) -> None:
    """Resume an interrupted durable run in this process; finished steps are not repeated.

    A run that another live process (a worker, a script) is executing is refused, not run twice."""
    import anyio

    from ..exceptions import UnknownRunError, UserError
    from ..orchestrator._live import load_factory
    from ..state._records import RunRecords

    try:
        rec = RunRecords(state_from_ctx(ctx)).get(run_id, with_delegations=False)
    except UnknownRunError:
        raise UserError(
            f'unknown run {run_id!r}: nothing of it was recorded (a process stopped before it recorded the run '
            'leaves nothing to resume); start it again with the same run id: team.run(task, run_id=...)'
        ) from None
    factory = team or rec.factory
    if not factory:
        raise UserError(f'run {rec.run_id} recorded no team factory; pass --team module:callable')
    t = load_factory(factory)
    result = anyio.run(lambda: t.resume(rec.run_id, force=force))
    typer.echo(json.dumps({'run_id': result.run_id, 'status': result.status, 'output': result.output}, default=str))
