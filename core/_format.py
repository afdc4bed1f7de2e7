"""How every view writes a duration: `850 ms`, `12.3 s`, `4 min 50 s`, `2 h 5 min` (the CLI and the console)."""

from __future__ import annotations

__all__ = ('human_duration',)


def human_duration(seconds: float | None, *, missing: str = '–') -> str:
    """A duration a person reads at a glance; `missing` for None (not finished, not known)."""
    if seconds is None:
        return missing
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        ms = seconds * 1000
        return f'{ms:.1f} ms' if ms < 10 else f'{ms:.0f} ms'
    if seconds < 60:
        return f'{seconds:.1f} s'
    total = round(seconds)
    if total < 3600:
        m, s = divmod(total, 60)
        return f'{m} min {s} s' if s else f'{m} min'
    if total < 86400:
        h, rest = divmod(total, 3600)
        m = rest // 60
        return f'{h} h {m} min' if m else f'{h} h'
    d, rest = divmod(total, 86400)
    h = rest // 3600
    return f'{d} d {h} h' if h else f'{d} d'
