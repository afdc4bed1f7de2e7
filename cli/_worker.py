"""`proctor worker` (drain a queue of runs), `proctor workers` (who is alive) and `proctor submit`."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from ._app import app, state_from_ctx


def _factories_importable() -> None:
    # `proctor` (the console script) does not put the working directory on sys.path; `python -m` does.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


@app.command('worker')
def worker(
    ctx: typer.Context,
    queue: Annotated[str, typer.Option(help='The queue of runs to drain.')] = 'proctor-runs',
    concurrency: Annotated[int, typer.Option(help='Runs this worker executes at once.')] = 4,
    dead_after: Annotated[
        float,
        typer.Option(help='Seconds without a heartbeat after which a worker is dead and its runs are taken over.'),
    ] = 15.0,
    drain_timeout: Annotated[
        float, typer.Option(help='On SIGTERM/Ctrl-C, seconds to let held runs finish (a second signal: leave now).')
    ] = 30.0,
    poll_interval: Annotated[float, typer.Option(help='Seconds between queue polls.')] = 0.25,
    team: Annotated[
        list[str] | None,
        typer.Option('--team', help="Team factory to build up front ('module:fn' or 'file.py:fn'); repeatable."),
    ] = None,
    chroma_url: Annotated[
        str | None, typer.Option(help='Chroma server shared by all workers (default: $PROCTOR_CHROMA_URL).')
    ] = None,
    otlp_endpoint: Annotated[
        str | None, typer.Option(help='OTLP/HTTP collector for traces (default: $OTEL_EXPORTER_OTLP_ENDPOINT).')
    ] = None,
    executor_id: Annotated[str | None, typer.Option(help='DBOS executor id (default: worker-HOST-PID-RANDOM).')] = None,
) -> None:
    """Drain a queue of submitted runs. Start several, on one or several machines, on one Postgres
    (--database-url): they share the queue, and a dead worker's runs are taken over by a live one."""
    import signal

    from ..orchestrator._worker import Worker

    # Team factories read these when they build memory and tracing (ChromaMemory.from_env, OTLP).
    if chroma_url:
        os.environ['PROCTOR_CHROMA_URL'] = chroma_url
    if otlp_endpoint:
        os.environ['OTEL_EXPORTER_OTLP_ENDPOINT'] = otlp_endpoint
    _factories_importable()
    w = Worker(
        state_from_ctx(ctx, create=True),
        queue=queue,
        concurrency=concurrency,
        dead_after=dead_after,
        poll_interval=poll_interval,
        executor_id=executor_id,
        teams=team or (),
    )

    def on_signal(signum: int, _frame: object) -> None:
        if w.stop_requested.is_set():
            w.abort_drain()
        w.stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    w.run(drain_timeout=drain_timeout)
    if w.lost:
        raise typer.Exit(1)


@app.command('workers')
def workers(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
    all_: Annotated[bool, typer.Option('--all', help='Include workers already recovered (gone).')] = False,
) -> None:
    """Workers recorded in the state store: queue, status, last heartbeat, who recovered whom."""
    from ..state._heartbeats import Heartbeats

    recs = Heartbeats(state_from_ctx(ctx)).list(include_gone=all_)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in recs]))
        return
    if not recs:
        typer.echo('no workers')
        return
    from ._output import print_table

    print_table(
        ('executor', 'host', 'pid', 'queue', 'concurrency', 'status', 'last beat', 'recovered by'),
        [
            (
                r.executor_id,
                r.host,
                r.pid,
                r.queue,
                r.concurrency,
                r.status,
                f'{r.age_s:.1f}s ago',
                r.recovered_by or '-',
            )
            for r in recs
        ],
        right=('pid', 'concurrency', 'last beat'),
    )


@app.command('submit')
def submit(
    ctx: typer.Context,
    factory: Annotated[
        str, typer.Argument(help="Team factory: 'package.module:build_team' or 'path/to/file.py:build_team'.")
    ],
    task: Annotated[str, typer.Argument(help='What the team should do.')],
    project: Annotated[str, typer.Option(help='Project the run is booked to.')] = 'default',
    data_class: Annotated[str, typer.Option(help='public, internal, confidential or restricted.')] = 'internal',
    queue: Annotated[str, typer.Option(help='The queue workers drain.')] = 'proctor-runs',
    run_id: Annotated[str | None, typer.Option(help='Run id (default: a new one).')] = None,
    wait: Annotated[bool, typer.Option('--wait', help='Wait until the run finishes and print its result.')] = False,
    timeout: Annotated[float | None, typer.Option(help='With --wait: give up after this many seconds.')] = None,
) -> None:
    """Enqueue a run for the workers and print its run id (with --wait: its result as JSON)."""
    import anyio

    from ..orchestrator._live import load_factory
    from ..state._queue import normalize_factory, wait_for_run

    _factories_importable()
    t = load_factory(factory)
    t.factory = t.factory or normalize_factory(factory)
    rid = anyio.run(lambda: t.submit(task, project=project, data_class=data_class, run_id=run_id, queue=queue))
    if not wait:
        typer.echo(rid)
        return
    rec = wait_for_run(state_from_ctx(ctx, create=True), rid, timeout=timeout)
    typer.echo(
        json.dumps({'run_id': rec.run_id, 'status': rec.status, 'output': rec.output, 'error': rec.error}, default=str)
    )
    if rec.status != 'succeeded':
        raise typer.Exit(1)
