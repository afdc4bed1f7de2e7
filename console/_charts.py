"""Usage over time as an inline SVG stacked bar chart, rendered on the server (no JavaScript, no CDN)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from html import escape
from typing import Any

__all__ = ('UsageSeries', 'bucket_usage', 'stacked_bars_svg', 'PALETTE')

PALETTE = ('#3b82f6', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#06b6d4', '#ec4899', '#84cc16', '#94a3b8')
MAX_SERIES = 8


@dataclass
class UsageSeries:
    buckets: list[float]  # bucket start times (epoch s), oldest first
    bucket_s: int
    series: dict[str, list[float]]  # group -> value per bucket (the top groups, then 'other')
    metric: str


def bucket_usage(rows: list[dict[str, Any]], *, by: str, metric: str, now: float, since: float) -> UsageSeries:
    """Sum `metric` ('cost' or 'tokens') of ledger rows per time bucket and per value of `by`.

    Buckets are hours for a range up to two days, else days (UTC); the biggest groups keep their
    own series and the rest are summed as 'other'.
    """
    span = max(now - since, 1)
    bucket_s = 3600 if span <= 2 * 86400 else 86400
    first = int(since // bucket_s) * bucket_s
    n = int((now - first) // bucket_s) + 1
    buckets = [float(first + i * bucket_s) for i in range(n)]

    def value(r: dict[str, Any]) -> float:
        return float(r['cost_usd']) if metric == 'cost' else float(r['input_tokens'] + r['output_tokens'])

    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        totals[str(r[by])] += value(r)
    ranked = sorted(totals, key=lambda k: (-totals[k], k))
    keep = set(ranked[:MAX_SERIES] if len(ranked) <= MAX_SERIES else ranked[: MAX_SERIES - 1])
    series: dict[str, list[float]] = {k: [0.0] * n for k in ranked if k in keep}
    for r in rows:
        i = int((r['created_at'] - first) // bucket_s)
        if not 0 <= i < n:
            continue
        key = str(r[by]) if str(r[by]) in keep else 'other'
        series.setdefault(key, [0.0] * n)[i] += value(r)
    return UsageSeries(buckets, bucket_s, series, metric)


def _fmt(v: float, metric: str) -> str:
    if metric == 'cost':
        return f'${v:.4f}' if v < 1 else f'${v:,.2f}'
    return f'{v:,.0f}'


def _bucket_label(ts: float, bucket_s: int) -> str:
    t = dt.datetime.fromtimestamp(ts, dt.UTC)
    return t.strftime('%H:00') if bucket_s < 86400 else t.strftime('%m-%d')


def stacked_bars_svg(u: UsageSeries, *, width: int = 860, height: int = 260) -> str:
    """An accessible SVG (title, per-bar tooltips, legend) of the series; an empty chart says so."""
    pad_l, pad_r, pad_t, pad_b = 64, 12, 12, 44
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    n = len(u.buckets)
    totals = [sum(s[i] for s in u.series.values()) for i in range(n)]
    peak = max(totals, default=0.0)
    label = 'spend (USD)' if u.metric == 'cost' else 'tokens'
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height + 24 * max((len(u.series) + 3) // 4 - 1, 0)}" '
        f'role="img" aria-label="{escape(label)} over time">',
        f'<title>{escape(label)} over time</title>',
    ]
    # axis and gridlines
    for i in range(5):
        y = pad_t + plot_h - plot_h * i / 4
        out.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        if peak > 0 or i == 0:
            out.append(
                f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{escape(_fmt(peak * i / 4, u.metric))}</text>'
            )
    if peak <= 0:
        out.append(
            f'<text x="{pad_l + plot_w / 2}" y="{pad_t + plot_h / 2}" text-anchor="middle" class="empty">no usage in this range</text>'
        )
    slot = plot_w / max(n, 1)
    bar_w = max(slot * 0.7, 1.0)
    every = max(1, n // 12)
    colours = {k: PALETTE[i % len(PALETTE)] if k != 'other' else PALETTE[-1] for i, k in enumerate(u.series)}
    for i, ts in enumerate(u.buckets):
        x = pad_l + i * slot + (slot - bar_w) / 2
        y = pad_t + plot_h
        for key, values in u.series.items():
            v = values[i]
            if v <= 0 or peak <= 0:
                continue
            h = plot_h * v / peak
            y -= h
            tip = f'{key} · {_bucket_label(ts, u.bucket_s)} · {_fmt(v, u.metric)}'
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" fill="{colours[key]}">'
                f'<title>{escape(tip)}</title></rect>'
            )
        if i % every == 0:
            out.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{pad_t + plot_h + 16}" text-anchor="middle" class="axis">'
                f'{escape(_bucket_label(ts, u.bucket_s))}</text>'
            )
    # legend, four per line
    for j, key in enumerate(u.series):
        lx = pad_l + (j % 4) * (plot_w / 4)
        ly = height + 24 * (j // 4) - 10
        out.append(f'<rect x="{lx:.1f}" y="{ly - 10}" width="12" height="12" fill="{colours[key]}"/>')
        out.append(f'<text x="{lx + 18:.1f}" y="{ly}" class="legend">{escape(key)}</text>')
    out.append('</svg>')
    return ''.join(out)
