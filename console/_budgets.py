"""Budgets and how close each is to its limit (the routing area enforces them; the console only reads)."""

from __future__ import annotations

from typing import Any

from ..state._store import StateStore

__all__ = ('budget_status',)

#: Per-run budget scopes listed one by one (the rest are summarised).
MAX_RUN_SCOPES = 10


def budget_status(store: StateStore) -> dict[str, Any]:
    """`{'budgets': [...], 'runs': {...}}`: one row per team/project/specialist/model budget scope in use
    (name, period, spent, limit, fraction, level ok|near|over), and per-run budgets summarised with
    the ones near or over their limit listed."""
    from ..models._budget import budget_status as scopes

    rows = []
    run_rows = []
    for s in scopes(store):
        name, _, period = s['name'].partition('@')
        unit = 'usd' if s['limit_usd'] else 'tokens'
        row = {
            'scope': s['scope'],
            'level': s['level'],
            'name': f'{s["level"]} {name}',
            'period': period or 'total',
            'unit': unit,
            'spent': s['spent_usd'] + s['reserved_usd'] if unit == 'usd' else s['spent_tokens'] + s['reserved_tokens'],
            'limit': s['limit_usd'] if unit == 'usd' else s['limit_tokens'],
            'fraction': s['fraction'],
            'status': s['status'],
            'spent_usd': s['spent_usd'],
            'spent_tokens': s['spent_tokens'],
            'limit_usd': s['limit_usd'],
            'limit_tokens': s['limit_tokens'],
        }
        (run_rows if s['level'] == 'run' else rows).append(row)
    hot = sorted((r for r in run_rows if r['status'] != 'ok'), key=lambda r: -r['fraction'])
    return {
        'budgets': rows + hot[:MAX_RUN_SCOPES],
        'runs': {
            'count': len(run_rows),
            'near': sum(r['status'] == 'near' for r in run_rows),
            'over': sum(r['status'] == 'over' for r in run_rows),
        },
    }
