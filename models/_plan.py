"""A routing decision in full (`RoutePlan`) and how the model request finds it.

`ModelRouter.route` is called by the team right before it runs an agent, in the same task, so the
plan travels in a context variable keyed by specialist: the routed model reads it inside the model
request (inside the durable step), the budget and ledger observers read it around the request.
Parallel delegations run in their own tasks, so each sees its own plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic_ai.messages import ModelRequest, ToolReturnPart

__all__ = ('RoutePlan', 'set_plan', 'plan_for', 'escalation_level', 'set_skipped', 'skipped')

_EMPTY: Mapping[str, RoutePlan] = MappingProxyType({})
_plans: ContextVar[Mapping[str, RoutePlan]] = ContextVar('proctor_route_plans', default=_EMPTY)
_NONE: Mapping[str, str] = MappingProxyType({})
# Models the budget guard took out of the next request's chain (their own budget is used up), and why.
_skipped: ContextVar[Mapping[str, str]] = ContextVar('proctor_skipped_models', default=_NONE)


@dataclass
class RoutePlan:
    """Which models may serve one agent run, in order, and why.

    `tiers[0]` is the routed chain (the first model, then its fallbacks on provider failure);
    `tiers[n]` is the n-th escalation, used once output validation has failed n times.
    Every model in every tier is approved for `data_class`.
    """

    specialist: str
    data_class: str
    project: str
    team: str
    tiers: tuple[tuple[str, ...], ...]
    reason: str
    rejected: dict[str, str] = field(default_factory=dict)
    degraded: str | None = None
    costs: dict[str, float] = field(default_factory=dict)  # call key -> actual USD (the ledger observer fills it)
    evaluation: dict[str, Any] | None = None  # select = "cheapest-passing": what the evaluations said
    pool: tuple[str, ...] = ()  # select = "cheapest-passing": every approved model the evaluations may pick

    @property
    def primary(self) -> str:
        return self.tiers[0][0]

    @property
    def model_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for tier in self.tiers:
            seen.update(dict.fromkeys(tier))
        return list(seen)

    def tier_for(self, messages: Sequence[Any]) -> int:
        return min(escalation_level(messages), len(self.tiers) - 1)


def escalation_level(messages: Sequence[Any]) -> int:
    """How many times this run's output (or tool arguments) failed validation so far."""
    from pydantic_ai.messages import RetryFeedbackPart, RetryPromptPart

    n = 0
    for m in messages:
        if isinstance(m, ModelRequest):
            for p in m.parts:
                if isinstance(p, (RetryPromptPart, RetryFeedbackPart)) or (
                    isinstance(p, ToolReturnPart) and getattr(p, 'outcome', None) == 'retried'
                ):
                    n += 1
    return n


def set_plan(plan: RoutePlan) -> None:
    """Make `plan` the one for its specialist in the current task (and the tasks it starts)."""
    _plans.set(MappingProxyType({**_plans.get(), plan.specialist: plan}))


def plan_for(specialist: str) -> RoutePlan | None:
    return _plans.get().get(specialist)


def set_skipped(reasons: Mapping[str, str]) -> None:
    """Take these models out of the chain of the next model request in this task (set before each one)."""
    _skipped.set(MappingProxyType(dict(reasons)) if reasons else _NONE)


def skipped() -> Mapping[str, str]:
    return _skipped.get()
