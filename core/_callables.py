"""How many positional arguments a user's callable takes (scripted model steps, evaluation checks
may take one argument or two)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ('positional_arity',)


def positional_arity(fn: Callable[..., Any]) -> int:
    """The positional parameters of `fn`; 2 for `*args` or a signature that cannot be read. Cached
    per callable (a scripted model asks on every call; `inspect.signature` costs ~20 µs)."""
    try:
        return _cached_arity(fn)
    except TypeError:  # unhashable
        return _arity(fn)


@functools.lru_cache(maxsize=1024)
def _cached_arity(fn: Callable[..., Any]) -> int:
    return _arity(fn)


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
