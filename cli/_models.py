"""`proctor models list` (the registry of a proctor.toml), `proctor models check [MODEL]` (one tiny request
to each) and `proctor models attempts RUN`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._app import app, state_from_ctx

models_app = typer.Typer(
    help='The model registry (proctor.toml) and the attempts made on each model.', no_args_is_help=True
)
app.add_typer(models_app, name='models')

ConfigOption = Annotated[Path, typer.Option('--config', help='The proctor.toml to read.')]


def _money(v: float) -> str:
    return f'{v:g}'


@models_app.command('list')
def list_models(
    config: ConfigOption = Path('proctor.toml'),
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
) -> None:
    """Every model of the registry: provider string, version, prices, latency, capabilities, approvals."""
    from ..models._router import ModelRouter

    router = ModelRouter.from_file(config)  # validates the policy and budgets too
    rows = router.registry.summaries()
    if as_json:
        typer.echo(json.dumps({'config': str(config), 'models': rows}))
        return
    from ._output import print_table

    print_table(
        (
            'id',
            'model',
            'version',
            '$/M in',
            '$/M out',
            'tier',
            'latency',
            'context',
            'region',
            'data classes',
            'capabilities',
        ),
        [
            (
                r['id'],
                r['model'],
                r['version'] or '-',
                _money(r['usd_per_m_input']),
                _money(r['usd_per_m_output']),
                r['cost_tier'],
                f'{r["p50_ms"]} ms' if r['p50_ms'] else (r['latency'] or '-'),
                r['context_window'] or '-',
                r['region'] or '-',
                ', '.join(r['data_classes']),
                ', '.join(r['capabilities']) or '-',
            )
            for r in rows
        ],
        flex='capabilities',
        right=('$/M in', '$/M out', 'context'),
        title=f'models in {config}',
    )


@models_app.command('check')
def check_models_cmd(
    model: Annotated[list[str] | None, typer.Argument(help='Registry ids to check (default: every model).')] = None,
    config: ConfigOption = Path('proctor.toml'),
    timeout: Annotated[float, typer.Option(help='Seconds to wait for each model.')] = 30.0,
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
) -> None:
    """Send one tiny request ("Reply with OK.", 8 tokens at most) to each model of the registry and print
    whether it is reachable, its status and latency. Exits 1 if any model did not answer."""
    import anyio

    from ..models._check import check_models
    from ..models._router import ModelRouter

    registry = ModelRouter.from_file(config).registry
    ids = list(model or registry.ids())
    for mid in ids:
        registry.get(mid)  # an unknown id: UnknownModelError naming the known ones
    results = anyio.run(lambda: check_models(registry, ids, timeout_s=timeout))
    if as_json:
        typer.echo(json.dumps({'config': str(config), 'models': [r.to_json() for r in results]}))
    else:
        from ._output import print_table

        print_table(
            ('id', 'model', 'reachable', 'status', 'latency', 'detail'),
            [
                (
                    r.model_id,
                    r.model,
                    'yes' if r.reachable else 'no',
                    r.status,
                    f'{r.latency_ms:.0f} ms' if r.latency_ms is not None else '-',
                    r.detail,
                )
                for r in results
            ],
            flex='detail',
            right=('latency',),
            title=f'models in {config}',
        )
    if not all(r.reachable for r in results):
        raise typer.Exit(1)


@models_app.command('attempts')
def attempts(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help='Run id.')],
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
) -> None:
    """Every attempt at every model call of a run: fallbacks, refusals and the model that answered."""
    from ..models._ledger import Ledger
    from ..state._records import RunRecords

    store = state_from_ctx(ctx)
    run = RunRecords(store).get(run_id, with_delegations=False)
    rows = Ledger(store).attempts(run.run_id)
    if as_json:
        typer.echo(json.dumps({'run_id': run.run_id, 'attempts': rows}, default=str))
        return
    if not rows:
        typer.echo(f'run {run.run_id}: no model attempts recorded (attempts are recorded for routed runs)')
        return
    from ._output import print_table

    print_table(
        ('call', 'agent', 'model', 'tier', 'status', 'ms', 'error'),
        [
            (
                a['call_key'].rpartition('#')[2],
                a['agent_path'],
                a['model_id'],
                a['tier'],
                a['status'],
                f'{a["elapsed_ms"]:.1f}',
                a['error'] or '',
            )
            for a in rows
        ],
        flex='error',
        right=('tier', 'ms'),
        title=f'attempts of run {run.run_id}',
    )
