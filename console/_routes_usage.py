"""Usage: spend and tokens by team, project, specialist and model over time, and budgets against their limits."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._budgets import budget_status
from ._charts import bucket_usage, stacked_bars_svg
from ._data import USAGE_DIMENSIONS
from ._http import JSONResponse, console_of, error_response, guarded, in_thread, render, wants_json

__all__ = ('routes',)

RANGES = {'1': 1, '7': 7, '30': 30, '90': 90}
DIMENSION_LABELS = {'team': 'team', 'project': 'project', 'specialist': 'specialist', 'model_id': 'model'}


def _totals(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    acc: dict[str, dict[str, Any]] = defaultdict(
        lambda: {'cost_usd': 0.0, 'input_tokens': 0, 'output_tokens': 0, 'calls': 0, 'runs': set()}
    )
    for r in rows:
        a = acc[str(r[by])]
        a['cost_usd'] += r['cost_usd']
        a['input_tokens'] += r['input_tokens']
        a['output_tokens'] += r['output_tokens']
        a['calls'] += 1
        a['runs'].add(r['run_id'])
    out = [{'name': k, **v, 'runs': len(v['runs'])} for k, v in acc.items()]
    return sorted(out, key=lambda x: (-x['cost_usd'], -(x['input_tokens'] + x['output_tokens']), x['name']))


@guarded
async def usage(request: Request) -> Response:
    """`?by=team|project|specialist|model_id&metric=cost|tokens&days=1|7|30|90` plus equality filters."""
    c = console_of(request)
    q = request.query_params
    by = q.get('by', 'team')
    metric = q.get('metric', 'cost')
    days = q.get('days', '7')
    if by not in USAGE_DIMENSIONS:
        return error_response(request, 400, f'by must be one of {", ".join(USAGE_DIMENSIONS)}, not {by!r}')
    if metric not in ('cost', 'tokens'):
        return error_response(request, 400, f'metric must be cost or tokens, not {metric!r}')
    if days not in RANGES:
        return error_response(request, 400, f'days must be one of {", ".join(RANGES)}, not {days!r}')
    filters = {d: q.get(d, '') for d in USAGE_DIMENSIONS if q.get(d)}
    now = time.time()
    since = now - RANGES[days] * 86400
    rows = await in_thread(c.data.ledger_rows, since=since, filters=filters)
    totals = _totals(rows, by)
    budgets = await in_thread(budget_status, c.store)
    series = bucket_usage(rows, by=by, metric=metric, now=now, since=since)
    if wants_json(request):
        return JSONResponse(
            {
                'by': by,
                'metric': metric,
                'days': int(days),
                'filters': filters,
                'totals': totals,
                'series': {'bucket_s': series.bucket_s, 'buckets': series.buckets, 'values': series.series},
                'budgets': budgets,
            }
        )
    values = await in_thread(c.data.ledger_values)
    grand = {
        'cost_usd': sum(r['cost_usd'] for r in rows),
        'tokens': sum(r['input_tokens'] + r['output_tokens'] for r in rows),
        'calls': len(rows),
    }
    return render(
        request,
        'usage.html',
        {
            'by': by,
            'metric': metric,
            'days': days,
            'ranges': list(RANGES),
            'filters': filters,
            'values': values,
            'dimensions': DIMENSION_LABELS,
            'totals': totals,
            'grand': grand,
            'budgets': budgets,
            'chart': Markup(stacked_bars_svg(series)),
            'page': 'usage',
        },
    )


def routes() -> list[Route]:
    return [Route('/usage', usage), Route('/api/usage', usage)]
