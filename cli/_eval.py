"""`proctor eval run|report|compare`: evaluation suites on the registry's models, and what they showed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..exceptions import UserError
from ._app import app, state_from_ctx

eval_app = typer.Typer(
    help='Evaluation suites (evals/<suite>.toml) run on candidate models; results drive `select = "cheapest-passing"`.',
    no_args_is_help=True,
)
app.add_typer(eval_app, name='eval')

ConfigOption = Annotated[
    Path, typer.Option('--config', help='The proctor.toml (registry, policy, budgets, [evals] dir).')
]


def _when(ts: float | None) -> str:
    return '-' if ts is None else dt.datetime.fromtimestamp(ts).strftime('%Y-%m-%d %H:%M')


def _router(config: Path, factory: str | None) -> Any:
    from ..models._router import ModelRouter

    if factory is None:
        return ModelRouter.from_file(config)
    from ..models._eval_suite import import_object

    make = import_object(factory, file=None, key='--router', what='--router')
    router = make() if callable(make) else make
    if not isinstance(router, ModelRouter):
        raise UserError(f'--router {factory}: returned {type(router).__name__}, not a ModelRouter')
    return router


@eval_app.command('run')
def run(
    ctx: typer.Context,
    suite: Annotated[str, typer.Argument(help='A suite name (in the [evals] dir) or a suite file.')],
    models: Annotated[
        str | None, typer.Option('--models', help='Candidate model ids, comma-separated (default: all).')
    ] = None,
    concurrency: Annotated[int, typer.Option('--concurrency', help='Cases in flight at once.')] = 4,
    repeat: Annotated[int, typer.Option('--repeat', help='Runs of each case on each model.')] = 1,
    project: Annotated[str, typer.Option('--project', help='Project the spend is booked (and budgeted) to.')] = 'eval',
    config: ConfigOption = Path('proctor.toml'),
    router_factory: Annotated[
        str | None, typer.Option('--router', help='module:callable returning a ModelRouter (instead of --config).')
    ] = None,
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
) -> None:
    """Run SUITE on every candidate model its cases' data classes allow, record the results, print them."""
    import anyio
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..models._eval import Evaluator
    from ..models._eval_suite import find_suite, load_suite
    from ..tracing._setup import flush_store, resolve_tracer_provider
    from ..tracing._store import register_trace

    router = _router(config, router_factory)
    evals_dir = router.evals_dir or (config.parent / 'evals')
    loaded = load_suite(find_suite(suite, evals_dir))
    wanted = [m.strip() for m in models.split(',') if m.strip()] if models is not None else None
    if wanted == []:
        raise UserError('--models is empty: name at least one model id')
    store = state_from_ctx(ctx, create=True)
    provider = resolve_tracer_provider(None, store)
    evaluator = Evaluator(
        router, store, project=project, tracer_provider=provider, on_trace=lambda t, r: register_trace(t, store, r)
    )
    evaluator.plan(loaded, wanted)  # every bad input fails here, before the progress bar
    with Progress(
        TextColumn(f'eval {loaded.name}'),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn('{task.fields[last]}'),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task('cases', total=None, last='')

        def progress(done: int, total: int, case: Any) -> None:
            bar.update(
                task, completed=done, total=total, last=f'{case.model_id}/{case.case} {"ok" if case.passed else "FAIL"}'
            )

        report = anyio.run(
            lambda: evaluator.run(loaded, models=wanted, concurrency=concurrency, repeat=repeat, progress=progress)
        )
    flush_store(store)
    if as_json:
        typer.echo(json.dumps(report.to_json()))
        return
    _print_results(f'suite {report.suite} ({report.subject}), run {report.run_id}', report.results)
    for m, cases in report.skipped.items():
        typer.echo(f'{m}: not run on {", ".join(cases)} (not approved for their data class)')


def _print_results(title: str, results: list[Any]) -> None:
    from ..models._eval import report_rows
    from ._output import print_table

    columns, rows = report_rows(results)
    print_table(columns, rows, right=columns[2:], title=title)


@eval_app.command('report')
def report(
    ctx: typer.Context,
    suite: Annotated[str | None, typer.Argument(help='Only this suite (default: every suite evaluated).')] = None,
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
) -> None:
    """Each model's latest complete result per suite, and the suite's runs."""
    from ..models._eval_store import EvalRecords

    records = EvalRecords(state_from_ctx(ctx))
    suites = [suite] if suite else records.suites()
    if suite and suite not in records.suites():
        raise UserError(f'no evaluation of suite {suite!r} recorded (run `proctor eval run {suite}`)')
    out = []
    for s in suites:
        latest = sorted(records.latest(s).values(), key=lambda r: (r.cost_per_case, r.model_id))
        runs = records.runs(suite=s, limit=10)
        out.append({'suite': s, 'latest': [r.to_json() for r in latest], 'runs': [r.to_json() for r in runs]})
    if as_json:
        typer.echo(json.dumps({'suites': out}))
        return
    if not out:
        typer.echo('no evaluations recorded (run `proctor eval run SUITE`)')
        return
    from ..models._eval_store import EvalResult

    for i, s in enumerate(out):
        if i:
            typer.echo('')
        latest = [EvalResult(**{k: v for k, v in r.items() if k != 'tokens'}) for r in s['latest']]
        if latest:
            _print_results(f'suite {s["suite"]}: latest complete result per model', latest)
        else:
            typer.echo(f'suite {s["suite"]}: no complete run yet')
        for r in s['runs']:
            extra = f'  {r["error"]}' if r['error'] else ''
            typer.echo(
                f'  run {r["run_id"]}  {r["status"]:8}  {_when(r["started_at"])}  {", ".join(r["models"])}{extra}'
            )


@eval_app.command('compare')
def compare(
    ctx: typer.Context,
    run_a: Annotated[str, typer.Argument(help='The earlier run (id or unique prefix).')],
    run_b: Annotated[str, typer.Argument(help='The later run.')],
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
    check: Annotated[bool, typer.Option('--check', help='Exit 1 when a model regressed (for CI).')] = False,
) -> None:
    """Per model: pass rate in RUN_A and RUN_B, and the cases that started failing (regressions)."""
    from ..models._eval_store import EvalRecords, compare_runs

    a, b, rows = compare_runs(EvalRecords(state_from_ctx(ctx)), run_a, run_b)
    regressed = [r for r in rows if r.status == 'regressed']
    if as_json:
        typer.echo(json.dumps({'a': a.run_id, 'b': b.run_id, 'suite': a.suite, 'models': [r.to_json() for r in rows]}))
    else:
        from ._output import print_table

        def pct(v: float | None) -> str:
            return '-' if v is None else f'{v:.0%}'

        print_table(
            ('model', 'version A', 'version B', 'pass A', 'pass B', 'status', 'newly failing'),
            [
                (
                    r.model_id,
                    r.version_a or '-',
                    r.version_b or '-',
                    pct(r.pass_rate_a),
                    pct(r.pass_rate_b),
                    r.status,
                    ', '.join(r.newly_failing) or '-',
                )
                for r in rows
            ],
            right=('pass A', 'pass B'),
            flex='newly failing',
            title=f'suite {a.suite}: {a.run_id} -> {b.run_id}',
        )
        typer.echo(f'{len(regressed)} regression{"s" if len(regressed) != 1 else ""}')
    if check and regressed:
        raise typer.Exit(1)
