"""Walking guard payloads: the strings inside a task, a dict of tool arguments, a list of results."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ('Finding', 'map_strings', 'memoized_scan', 'strings_of', 'text_of')

T = TypeVar('T')


@dataclass(frozen=True)
class Finding:
    """One match of a detector: what kind, where in the string, and the matched text."""

    kind: str
    start: int
    end: int
    text: str


def memoized_scan(scan: Callable[..., T], *, size: int = 64, max_chars: int = 16_384) -> Callable[..., T]:
    """`scan(text, *settings)` (a pure function that returns an immutable value) as
    `memo(scope, text, *settings)`, remembering its results for the last `size` calls on texts of at
    most `max_chars` characters (longer texts are scanned each time and never held).

    The same text often reaches a guard twice in one run: a specialist's answer is checked as the
    delegation's output and again as the delegating tool's result. `scope` (the run's id) keeps what
    is remembered to one run, so a workload repeating the same texts run after run is scanned as
    often as one that does not; the settings are part of the key, so a guard whose settings change,
    or a copy of it, never sees another setting's results."""

    @functools.lru_cache(maxsize=size)
    def cached(scope: Any, text: str, *settings: Any) -> T:
        return scan(text, *settings)

    def memo(scope: Any, text: str, *settings: Any) -> T:
        return cached(scope, text, *settings) if len(text) <= max_chars else scan(text, *settings)

    return memo


def map_strings(payload: Any, fn: Callable[[str], str]) -> Any:
    """`payload` with `fn` applied to every string in it (dict values, list/tuple items, pydantic model
    fields; keys kept)."""
    if isinstance(payload, str):
        return fn(payload)
    if isinstance(payload, dict):
        return {k: map_strings(v, fn) for k, v in payload.items()}
    if isinstance(payload, list):
        return [map_strings(v, fn) for v in payload]
    if isinstance(payload, tuple):
        return tuple(map_strings(v, fn) for v in payload)
    if hasattr(payload, 'model_dump') and hasattr(
        type(payload), 'model_validate'
    ):  # a pydantic model (structured output)
        data = payload.model_dump()
        changed = map_strings(data, fn)
        if changed != data:
            try:
                return type(payload).model_validate(changed)
            except ValueError:
                return payload  # the rewritten value does not validate: the caller decides (PIIGuard blocks)
    return payload


def strings_of(payload: Any) -> list[str]:
    """Every string in `payload` (in the order `map_strings` visits them)."""
    out: list[str] = []

    def grab(s: str) -> str:
        out.append(s)
        return s

    map_strings(payload.model_dump() if hasattr(payload, 'model_dump') else payload, grab)
    if not out and payload is not None and not isinstance(payload, (int, float, bool)):
        out.append(text_of(payload))  # a model or other object: check its JSON form
    return out


def text_of(payload: Any) -> str:
    """The payload as one text (strings as they are, anything else as JSON)."""
    if isinstance(payload, str):
        return payload
    if hasattr(payload, 'model_dump_json'):
        return payload.model_dump_json()
    return json.dumps(payload, default=str, ensure_ascii=False)
