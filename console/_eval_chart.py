"""The cost/quality frontier of one suite as an inline SVG: pass rate against cost per case, per model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from ._charts import PALETTE

__all__ = ('frontier', 'frontier_svg')


def frontier(points: Sequence[dict[str, Any]]) -> list[str]:
    """Models no other model beats on both cost (lower) and pass rate (higher or equal), cheapest first."""
    out: list[str] = []
    best = -1.0
    for p in sorted(points, key=lambda p: (p['cost_per_case'], -p['pass_rate'])):
        if p['pass_rate'] > best:
            out.append(p['model_id'])
            best = p['pass_rate']
    return out


def frontier_svg(
    points: Sequence[dict[str, Any]],
    *,
    chosen: dict[str, str] | None = None,
    min_pass_rate: float | None = None,
    width: int = 860,
    height: int = 280,
) -> str:
    """`points`: {model_id, pass_rate, cost_per_case}. `chosen`: model -> label of the routing choice
    (ringed); `min_pass_rate`: the policy's bar (a dashed line). Cost is on a log scale when it spans
    more than a factor of 20."""
    chosen = chosen or {}
    pad_l, pad_r, pad_t, pad_b = 56, 24, 30, 44
    pw, ph = width - pad_l - pad_r, height - pad_t - pad_b
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart frontier" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="pass rate against cost per case">',
        '<title>pass rate against cost per case</title>',
    ]
    for i in range(5):
        y = pad_t + ph - ph * i / 4
        out.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{25 * i}%</text>')
    out.append(
        f'<text x="{pad_l + pw / 2}" y="{height - 6}" text-anchor="middle" class="axis">cost per case (USD)</text>'
    )
    if not points:
        out.append(
            f'<text x="{pad_l + pw / 2}" y="{pad_t + ph / 2}" text-anchor="middle" class="empty">no results</text></svg>'
        )
        return ''.join(out)
    costs = [max(float(p['cost_per_case']), 0.0) for p in points]
    lo, hi = min(costs), max(costs)
    use_log = lo > 0 and hi / lo > 20
    if use_log:
        lo_t, hi_t = math.log10(lo), math.log10(hi)
    else:
        lo_t, hi_t = 0.0, hi or 1.0
    span = (hi_t - lo_t) or 1.0

    def x_of(cost: float) -> float:
        t = math.log10(cost) if use_log and cost > 0 else cost
        return pad_l + 20 + (pw - 40) * ((t - lo_t) / span if (hi_t - lo_t) else 0.5)

    def y_of(rate: float) -> float:
        return pad_t + ph - ph * rate

    for frac in (0.0, 0.5, 1.0):
        t = lo_t + span * frac
        v = 10**t if use_log else t
        out.append(
            f'<text x="{pad_l + 20 + (pw - 40) * frac:.1f}" y="{pad_t + ph + 16}" text-anchor="middle" class="axis">'
            f'${v:.2g}</text>'
        )
    if min_pass_rate is not None:
        y = y_of(min_pass_rate)
        out.append(
            f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}" class="bar-line" '
            f'stroke="#ef4444" stroke-dasharray="6 4"><title>min pass rate {min_pass_rate:.0%}</title></line>'
        )
    front = frontier(points)
    by_id = {p['model_id']: p for p in points}
    if len(front) > 1:
        path = ' '.join(f'{x_of(by_id[m]["cost_per_case"]):.1f},{y_of(by_id[m]["pass_rate"]):.1f}' for m in front)
        out.append(f'<polyline points="{path}" fill="none" stroke="#94a3b8" stroke-width="1.5" class="frontier-line"/>')
    for i, p in enumerate(sorted(points, key=lambda p: p['model_id'])):
        mid = str(p['model_id'])
        cx, cy = x_of(float(p['cost_per_case'])), y_of(float(p['pass_rate']))
        colour = PALETTE[i % (len(PALETTE) - 1)]
        tip = f'{mid}: pass rate {p["pass_rate"]:.0%}, ${p["cost_per_case"]:.6f}/case'
        if mid in chosen:
            tip += f' (routed: {chosen[mid]})'
            out.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="12" fill="none" stroke="#111827" stroke-width="2" '
                f'class="routed" data-model="{escape(mid)}"><title>{escape(tip)}</title></circle>'
            )
        out.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{colour}" class="point" data-model="{escape(mid)}">'
            f'<title>{escape(tip)}</title></circle>'
        )
        label = mid + (f' ← {chosen[mid]}' if mid in chosen else '')
        right = cx > pad_l + pw * 0.7  # near the right edge: the label goes to the point's left
        out.append(
            f'<text x="{cx - 14 if right else cx + 14:.1f}" y="{cy - 10:.1f}" text-anchor="{"end" if right else "start"}" '
            f'class="legend">{escape(label)}</text>'
        )
    out.append('</svg>')
    return ''.join(out)
