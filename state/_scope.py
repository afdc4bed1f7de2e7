"""`RunScope`: what the code running inside one team run (its tools, memory tools, side effects) may
reach of the team that runs it: the state store, the team's guardrails and model registry.

The team sets it (`current_scope`) around each run and delegation, so lower layers never look the
team up; a tool called outside a team run sees None.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._store import StateStore

__all__ = ('RunScope', 'current_scope', 'run_scope')


@dataclass(frozen=True)
class RunScope:
    team: str
    store: StateStore
    record: bool  # the team records its runs (guard decisions go to the store only then)
    guardrails: Any  # the team's `proctor.guardrails.GuardrailPipeline` (`has(hook)`, `apply(...)`)
    registry: Any = None  # the team's `proctor.models.ModelRegistry`, when a `ModelRouter` routes it


#: The scope of the team run this task belongs to.
current_scope: ContextVar[RunScope | None] = ContextVar('proctor_run_scope', default=None)


@contextmanager
def run_scope(scope: RunScope) -> Iterator[None]:
    """Code in this block runs as part of `scope`'s team run."""
    token = current_scope.set(scope)
    try:
        yield
    finally:
        current_scope.reset(token)
