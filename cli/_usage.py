"""`proctor usage`: spend and tokens from the ledger, by team, project, specialist or model; and budgets."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Annotated

import typer

from ..exceptions import UserError
from ._app import app, state_from_ctx

_RELATIVE = re.compile(r'^(\d+(?:\.\d+)?)\s*([smhdw])$')
_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}


def parse_since(value: str, *, now: float | None = None) -> float:
    """'90m', '24h', '7d', '2w' (ago), or an ISO date / datetime (local time unless it has an offset)."""
    now = time.time() if now is None else now
    v = value.strip()
    m = _RELATIVE.match(v)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return dt.datetime.fromisoformat(v).timestamp()
    except ValueError:
        raise UserError(f'--since {value!r}: use a duration like 24h or 7d, or a date like 2025-06-01') from None


@app.command('usage')
def usage(
    ctx: typer.Context,
    by: Annotated[str, typer.Option('--by', help='Group by team, project, specialist or model.')] = 'model',
    since: Annotated[str | None, typer.Option('--since', help='Only calls since: 24h, 7d, 2025-06-01, ...')] = None,
    run: Annotated[str | None, typer.Option('--run', help='Only the calls of this run (id or unique prefix).')] = None,
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
) -> None:
    """Model calls, tokens and cost recorded in the ledger (a sub-agent's spend counts toward its run)."""
    from ..models._budget import budget_status
    from ..models._ledger import USAGE_DIMENSIONS, Ledger

    if by not in USAGE_DIMENSIONS:
        raise UserError(f'--by {by!r}: one of {", ".join(USAGE_DIMENSIONS)}')
    start = parse_since(since) if since else None
    store = state_from_ctx(ctx)
    if run is not None:
        from ..state._records import RunRecords

        run = (
            RunRecords(store).get(run, with_delegations=False).run_id
        )  # a prefix is enough; an unknown run is an error
    ledger = Ledger(store)
    rows = ledger.usage(by, since=start, run_id=run)  # type: ignore[arg-type]
    total = ledger.total(since=start, run_id=run)
    budgets = budget_status(store)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    'by': by,
                    'since': start,
                    'run': run,
                    'rows': [r.to_json() for r in rows],
                    'total': total.to_json(),
                    'budgets': budgets,
                }
            )
        )
        return
    from ._output import print_table

    when = f' since {dt.datetime.fromtimestamp(start):%Y-%m-%d %H:%M}' if start else ''
    scope = f' of run {run}' if run else ''
    print_table(
        (by, 'calls', 'input tokens', 'output tokens', 'cost $'),
        [(r.key, r.calls, r.input_tokens, r.output_tokens, f'{r.cost_usd:.6f}') for r in [*rows, total]],
        right=('calls', 'input tokens', 'output tokens', 'cost $'),
        title=f'usage by {by}{scope}{when}',
    )
    # Per-run budgets make one scope per run: show the runs near or over their limit only.
    shown = [s for s in budgets if s['level'] != 'run' or s['status'] != 'ok']
    if shown:
        hidden = len(budgets) - len(shown)
        table = []
        for s in shown:
            unit_usd = s['limit_usd'] is not None
            limit = f'${s["limit_usd"]:g}' if unit_usd else f'{s["limit_tokens"]} tok'
            spent = f'${s["spent_usd"]:.6f}' if unit_usd else f'{s["spent_tokens"]} tok'
            reserved = f'${s["reserved_usd"]:.6f}' if unit_usd else f'{s["reserved_tokens"]} tok'
            table.append((s['scope'], limit, spent, reserved, f'{s["fraction"]:.0%}', s['status']))
        typer.echo('')
        print_table(
            ('budget', 'limit', 'spent', 'reserved', 'used', 'status'),
            table,
            right=('limit', 'spent', 'reserved', 'used'),
            title='budgets' + (f' ({hidden} runs within their budget not shown)' if hidden else ''),
        )
