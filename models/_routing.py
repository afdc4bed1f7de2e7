"""The routing seam: which model serves a specialist for a run, and why.

`PreferredModelRouter` (the default) serves each specialist on the model it declares. The
registry-backed `ModelRouter` (proctor.toml) implements the same protocol with data-class
approval, capabilities, cost tiers, fallback and budgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic_ai.models import Model
from pydantic_ai.usage import RunUsage

from ..core._events import RunObserver
from ..exceptions import UserError
from ._models import build_model, model_id_of

__all__ = ('Routable', 'Route', 'Router', 'PreferredModelRouter')


class Routable(Protocol):
    """What a router reads of an agent it routes (`proctor.Specialist` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> Any: ...

    @property
    def requires(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Route:
    """A routing decision: the model (registered with the agent), its id, the reason, its prices."""

    model_id: str
    model: Model | None  # None: the agent's default model
    reason: str
    usd_per_m_input: float = 0.0
    usd_per_m_output: float = 0.0

    @property
    def model_key(self) -> Model | None:
        return self.model

    def cost(self, usage: RunUsage) -> float:
        return (usage.input_tokens * self.usd_per_m_input + usage.output_tokens * self.usd_per_m_output) / 1e6


class Router(Protocol):
    def candidates(self, spec: Routable) -> dict[str, Model]:
        """Every model this specialist may be served on, default first (registered with the agent)."""
        ...

    def route(self, spec: Routable, *, data_class: str, project: str, team: str) -> Route: ...

    def observers(self) -> list[RunObserver]:
        """Observers the team must put first on its list (a router's ledger and budget guard)."""
        ...


class PreferredModelRouter:
    """Serve each specialist on its declared `model` (and nothing else)."""

    def __init__(self, default_model: Any = None) -> None:
        self.default_model = default_model
        # (name, model declared) -> (id, model, what was declared): two members of one name under
        # different leads of a nested team may declare different models. The declared object is kept so its id stays its own.
        self._cache: dict[tuple[str, Any], tuple[str, Model, Any]] = {}

    def _resolve(self, spec: Routable) -> tuple[str, Model]:
        declared = spec.model
        key = (spec.name, declared if declared is None or isinstance(declared, str) else id(declared))
        hit = self._cache.get(key)
        if hit is None:
            m = declared if declared is not None else self.default_model
            if m is None:
                raise UserError(f'specialist {spec.name!r} has no model (set Specialist(model=...))')
            hit = (model_id_of(m), build_model(m), declared)
            self._cache[key] = hit
        return hit[0], hit[1]

    def candidates(self, spec: Routable) -> dict[str, Model]:
        model_id, model = self._resolve(spec)
        return {model_id: model}

    def observers(self) -> list[RunObserver]:
        return []

    def route(self, spec: Routable, *, data_class: str, project: str, team: str) -> Route:
        model_id, _ = self._resolve(spec)
        return Route(model_id=model_id, model=None, reason='preferred model of the specialist')
