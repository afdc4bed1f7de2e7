"""`ModelRouter`: the policy of `proctor.toml` applied to each agent run of a team.

```python
router = ModelRouter.from_file('proctor.toml')
team = Team(Supervisor(), [coding(), review()], router=router)   # ledger + budgets attach themselves
```

For each agent run the router builds a `RoutePlan`: the specialist's chain (policy `preferred` +
`fallback`, else the specialist's declared model and `fallback_models`, else the policy `default`,
else every registered model, cheapest first), minus every model that is not approved for the run's
data class or breaks a constraint (capabilities the specialist or a rule requires, maximum cost
tier, latency budget, regions, a rule's allow-list). It never lets a model outside the plan see
the data, refuses unknown models when it is built, and says why in `Route.reason` (stored on the
delegation row, the span and the audit log). No model left: `NoRouteError` naming the specialist,
the data class and every candidate rejected with its reason. Near a budget's limit (`degrade_at`)
the cheapest approved model goes first; a model whose own budget is used up is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.models import Model
from pydantic_ai.usage import RunUsage

from ..core._data_classes import DATA_CLASSES
from ..core._deps import RunDeps
from ..core._events import RunObserver
from ..exceptions import ConfigError, NoRouteError, UnknownModelError
from ._budget import Budget, BudgetGuard
from ._config import RoutingPolicy, RoutingRule, SpecialistPolicy, load_config, parse_policy
from ._eval_route import EvalRouteAudit, EvalSelector
from ._fallback import RegistryModel, RoutedModel
from ._ledger import LedgerObserver
from ._plan import RoutePlan, set_plan
from ._registry import COST_TIERS, ModelInfo, ModelRegistry
from ._routing import Routable, Route

__all__ = ('ModelRouter', 'PlannedRoute')


@dataclass(frozen=True)
class PlannedRoute(Route):
    """A `Route` with its full plan; its cost is the ledger's (real model, real usage) once known."""

    plan: RoutePlan | None = None

    def cost(self, usage: RunUsage) -> float:
        if self.plan is not None and self.plan.costs:
            return sum(self.plan.costs.values())
        return super().cost(usage)


@dataclass
class _Constraints:
    requires: set[str] = field(default_factory=set)
    max_tier: str | None = None
    max_latency_ms: int | None = None
    regions: set[str] | None = None
    allow: set[str] | None = None

    def tighten(
        self,
        *,
        requires: Sequence[str] = (),
        max_tier: str | None = None,
        max_latency_ms: int | None = None,
        regions: Sequence[str] | None = None,
        allow: Sequence[str] | None = None,
    ) -> None:
        self.requires |= set(requires)
        if max_tier is not None and (
            self.max_tier is None or COST_TIERS.index(max_tier) < COST_TIERS.index(self.max_tier)
        ):
            self.max_tier = max_tier
        if max_latency_ms is not None:
            self.max_latency_ms = min(self.max_latency_ms or max_latency_ms, max_latency_ms)
        if regions is not None:
            self.regions = set(regions) if self.regions is None else self.regions & set(regions)
        if allow is not None:
            self.allow = set(allow) if self.allow is None else self.allow & set(allow)

    def apply(self, rule: RoutingRule) -> None:
        """Tighten by a policy rule that matched (its capabilities, tier, latency, regions, models)."""
        self.tighten(
            requires=rule.requires,
            max_tier=rule.max_cost_tier,
            max_latency_ms=rule.max_latency_ms,
            regions=rule.regions,
            allow=rule.models,
        )

    def reject(self, model_id: str, info: ModelInfo, data_class: str) -> str | None:
        """Why `model_id` may not serve under these constraints, or None."""
        if data_class not in info.data_classes:
            return f'not approved for {data_class} (approved: {", ".join(info.data_classes)})'
        if self.allow is not None and model_id not in self.allow:
            return 'not in the allow-list of a policy rule'
        if self.regions is not None and info.region not in self.regions:
            return f'region {info.region or "unset"} not in {sorted(self.regions)}'
        missing = sorted(self.requires - set(info.capabilities))
        if missing:
            return f'lacks capability {", ".join(missing)}'
        if self.max_tier is not None and COST_TIERS.index(info.tier) > COST_TIERS.index(self.max_tier):
            return f'cost tier {info.tier} above {self.max_tier}'
        lat = info.expected_latency_ms
        if self.max_latency_ms is not None and lat is not None and lat > self.max_latency_ms:
            return f'p50 {lat} ms over the latency budget of {self.max_latency_ms} ms'
        return None


class ModelRouter:
    """Routes every agent run of a team by the registry and policy; implements the `Router` protocol.

    `observers()` are the ledger and (with budgets) the budget guard; a team routed by this
    router puts them first among its observers, unless it was given them already.
    """

    def __init__(
        self,
        registry: ModelRegistry | Mapping[str, Any],
        policy: RoutingPolicy | Mapping[str, Any] | None = None,
        *,
        budgets: Sequence[Budget] = (),
        source: str | None = None,
        evaluations: EvalSelector | None = None,
    ) -> None:
        self.registry = registry if isinstance(registry, ModelRegistry) else ModelRegistry(registry, source=source)
        self.source = source or self.registry.source
        self.policy = parse_policy(policy, source=self.source)
        self.budgets = list(budgets)
        self._members: dict[str, RegistryModel] = {}
        self.ledger = LedgerObserver(registry=self.registry)
        self.budget_guard = BudgetGuard(self.budgets, registry=self.registry) if self.budgets else None
        # select = "cheapest-passing": results from the run's store (or this selector's), and their audit.
        self.evaluations = evaluations or EvalSelector()
        selects = any(sp.select == 'cheapest-passing' for sp in self.policy.specialists.values()) or any(
            cp.select == 'cheapest-passing' for cp in self.policy.capabilities.values()
        )
        self._eval_audit = EvalRouteAudit() if selects else None
        self.evals_dir: str | None = None  # `[evals] dir` of the proctor.toml (set by from_file)
        self._validate()

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        models: Mapping[str, Model] | None = None,
        budgets: Sequence[Budget] | None = None,
    ) -> ModelRouter:
        """Registry, policy and budgets from a `proctor.toml`; `models` binds ids to `Model` instances,
        `budgets` replaces the file's."""
        cfg = load_config(path, models=models)
        router = cls(cfg.registry, cfg.policy, budgets=cfg.budgets if budgets is None else budgets, source=cfg.path)
        router.evals_dir = str(cfg.evals_dir)
        return router

    def observers(self) -> list[RunObserver]:
        return [
            self.ledger,
            *([self.budget_guard] if self.budget_guard else []),
            *([self._eval_audit] if self._eval_audit else []),
        ]

    def refusal(
        self, model_id: str, *, data_class: str, specialist: str, project: str = '', team: str = ''
    ) -> str | None:
        """Why the policy keeps `model_id` from data of `data_class` (approval, and the rules matching
        the class: regions, allow-lists, capabilities, tiers), or None. Evaluations and their judges use it."""
        cons = _Constraints()
        for rule in self.policy.rules:
            if rule.matches(data_class=data_class, project=project, team=team, specialist=specialist):
                cons.apply(rule)
        return cons.reject(model_id, self.registry.get(model_id), data_class)

    def evaluations_changed(self, suite: str | None = None) -> None:
        """An evaluation of `suite` completed: the next route reads its results."""
        self.evaluations.invalidate(suite)

    # ------------------------------------------------------------------ load-time checks

    def _err(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.source, key=key)

    def _validate(self) -> None:
        p, known = self.policy, self.registry.ids()

        def check(key: str, ids: Sequence[str] | None) -> None:
            for mid in ids or ():
                if mid not in self.registry:
                    raise self._err(key, f'unknown model {mid!r} (known: {", ".join(sorted(known))})')

        check('policy.default', p.default)
        check('policy.escalate', p.escalate)
        for name, sp in p.specialists.items():
            check(f'policy.specialists.{name}.preferred', [sp.preferred] if sp.preferred else [])
            check(f'policy.specialists.{name}.fallback', sp.fallback)
            check(f'policy.specialists.{name}.escalate', sp.escalate)
        for i, rule in enumerate(p.rules):
            check(f'policy.rules[{i}].models', rule.models)
        for b in self.budgets:
            if b.level == 'model' and b.name != '*':
                check(f'budgets.model.{b.name}', [b.name])
        for i, rule in enumerate(p.rules):
            if rule.data_class is None:
                continue
            cons = _Constraints()
            cons.apply(rule)
            for dc in (rule.data_class,) if isinstance(rule.data_class, str) else rule.data_class:
                why = {m: cons.reject(m, self.registry.get(m), dc) for m in known}
                if all(why.values()):
                    raise self._err(
                        f'policy.rules[{i}]',
                        f'no model is approved for data class {dc!r} under this rule '
                        f'({"; ".join(f"{m}: {r}" for m, r in why.items())})',
                    )
        for name, sp in p.specialists.items():
            for dc in dict.fromkeys([*p.data_classes, *sp.data_classes]):
                try:
                    self._plan(name, (), None, data_class=dc, project='', team='', rules_scoped=False, evaluate=False)
                except NoRouteError as e:
                    raise self._err(
                        f'policy.specialists.{name}',
                        f'no approved model for data class {dc!r} '
                        f'({"; ".join(f"{m}: {r}" for m, r in e.rejected.items())})',
                    ) from None

    # ------------------------------------------------------------------ planning

    def _declared_chain(
        self, name: str, sp: SpecialistPolicy | None, declared: Any, fallbacks: Sequence[Any]
    ) -> tuple[list[str], str]:
        if sp is not None and (sp.preferred or sp.fallback):
            chain = [*([sp.preferred] if sp.preferred else []), *sp.fallback]
            return list(dict.fromkeys(chain)), 'policy chain'
        if declared is not None:
            ids = [self._id_of(name, m) for m in (declared, *fallbacks)]
            return list(dict.fromkeys(ids)), "specialist's own chain"
        if self.policy.default:
            return list(self.policy.default), 'policy default chain'
        order = sorted(
            self.registry.ids(),
            key=lambda m: (self.registry.get(m).usd_per_m_input + self.registry.get(m).usd_per_m_output, m),
        )
        return order, 'registry, cheapest first (no preference given)'

    def _id_of(self, name: str, model: Any) -> str:
        if isinstance(model, str):
            if model not in self.registry:
                raise UnknownModelError(
                    model,
                    known=self.registry.ids(),
                    hint=f'specialist {name!r} names it; add it to the registry{" in " + self.source if self.source else ""}',
                )
            return model
        if isinstance(model, Model):
            for mid in self.registry:
                if self.registry.get(mid).model is model:
                    return mid
        raise UnknownModelError(
            getattr(model, 'model_name', repr(model)),
            known=self.registry.ids(),
            hint=f'specialist {name!r} declares a model that is not in the registry: register it under an id',
        )

    def _plan(
        self,
        name: str,
        requires: Sequence[str],
        spec: Routable | None,
        *,
        data_class: str,
        project: str,
        team: str,
        rules_scoped: bool = True,
        deps: RunDeps | None = None,
        evaluate: bool = True,
    ) -> RoutePlan:
        p = self.policy
        sp = p.specialists.get(name)
        declared = getattr(spec, 'model', None)
        chain, origin = self._declared_chain(name, sp, declared, getattr(spec, 'fallback_models', ()))
        cons = _Constraints()
        cons.tighten(requires=requires)
        if sp is not None:
            cons.tighten(requires=sp.requires, max_tier=sp.max_cost_tier, max_latency_ms=sp.max_latency_ms)
        for rule in p.rules:
            if not rules_scoped and (rule.project is not None or rule.team is not None):
                continue
            if rule.matches(data_class=data_class, project=project, team=team, specialist=name):
                cons.apply(rule)
        rejected: dict[str, str] = {}
        ok: list[str] = []
        for mid in chain:
            why = cons.reject(mid, self.registry.get(mid), data_class)
            (ok.append(mid) if why is None else rejected.__setitem__(mid, why))  # type: ignore[func-returns-value]
        if not ok:
            raise NoRouteError(specialist=name, data_class=data_class, rejected=rejected)
        selection, pool = None, ()
        select = self._selection_policy(sp, cons.requires)
        if select is not None:
            every = sorted(
                self.registry.ids(),
                key=lambda m: (self.registry.get(m).usd_per_m_input + self.registry.get(m).usd_per_m_output, m),
            )
            pool = tuple(
                m for m in dict.fromkeys([*ok, *every]) if cons.reject(m, self.registry.get(m), data_class) is None
            )
            if evaluate:
                selection = self.evaluations.select(select, pool, self.registry)
                ok = [*selection.passing, *(m for m in ok if m not in selection.passing)]
        esc_ids = sp.escalate if sp is not None and sp.escalate is not None else p.escalate
        # Escalation is the stronger (pricier, slower) model by design: cost tier and latency do not bind it.
        esc_cons = _Constraints(cons.requires, None, None, cons.regions, cons.allow)
        esc: list[str] = []
        for mid in esc_ids:
            why = esc_cons.reject(mid, self.registry.get(mid), data_class)
            (esc.append(mid) if why is None else rejected.setdefault(mid, f'as escalation: {why}'))  # type: ignore[func-returns-value]
        degraded = None
        guard = self.budget_guard
        if guard is not None and deps is not None:
            usable = [m for m in ok if guard.model_exhausted(deps, m) is None]
            for m in ok:
                if m not in usable:
                    rejected[m] = f'model budget {guard.model_exhausted(deps, m)} used up'
            ok = usable or ok  # all used up: the reservation stops the run with BudgetExceeded
            hot = guard.pressure(deps, ok[0]) if p.degrade_at is not None else None
            if hot is not None and hot[1] >= p.degrade_at and len(ok) > 1:  # type: ignore[operator]
                cheapest = sorted(
                    ok, key=lambda m: self.registry.get(m).usd_per_m_input + self.registry.get(m).usd_per_m_output
                )
                if cheapest[0] != ok[0]:
                    degraded = f'budget {hot[0]} at {hot[1]:.0%} of its limit'
                    ok = cheapest
        tiers = (tuple(ok), *(tuple(esc[i:]) for i in range(len(esc))))
        if degraded:
            head = f'degraded to the cheapest approved model ({degraded})'
        elif selection is not None and selection.chosen is not None:
            head = selection.head
        elif selection is not None:
            head = selection.head + (
                f', first choice of the {origin}' if ok[0] == chain[0] else f', first approved in the {origin}'
            )
        elif ok[0] == chain[0]:
            head = f'first choice of the {origin}'
        else:
            head = f'first approved in the {origin} ({chain[0]} rejected)'
        why = f'{name} → {ok[0]}: {head}'
        why += f', approved for {data_class}'
        if len(ok) > 1:
            why += f'; fallback {", ".join(ok[1:])}'
        if esc:
            why += f'; escalate to {", ".join(esc)} on invalid output'
        if rejected:
            why += '; rejected ' + '; '.join(f'{m} ({r})' for m, r in rejected.items())
        if selection is not None:
            why += '; evaluations: ' + '; '.join(f'{m} {v}' for m, v in selection.verdicts.items())
        return RoutePlan(
            name,
            data_class,
            project,
            team,
            tiers,
            why,
            rejected,
            degraded,
            evaluation=selection.to_json() if selection is not None else None,
            pool=pool,
        )

    def _selection_policy(self, sp: SpecialistPolicy | None, requires: set[str]) -> Any:
        """The specialist's `select = "cheapest-passing"`, else that of the first capability it requires
        (`[policy.capabilities.<name>]`, in name order), else None (static routing)."""
        if sp is not None and sp.select == 'cheapest-passing':
            return sp
        if sp is not None and 'select' in sp.model_fields_set:
            return None  # select = "static" said explicitly: no capability overrides it
        for cap in sorted(requires):
            cp = self.policy.capabilities.get(cap)
            if cp is not None and cp.select == 'cheapest-passing':
                return cp
        return None

    def plan(self, spec: Routable, *, data_class: str, project: str = 'default', team: str = 'team') -> RoutePlan:
        """The plan for `spec` on a run of `data_class` (no side effects: nothing is recorded)."""
        deps = RunDeps(
            run_id='', team=team, project=project, data_class=data_class, agent_path=spec.name, specialist=spec.name
        )
        return self._plan(spec.name, spec.requires, spec, data_class=data_class, project=project, team=team, deps=deps)

    # ------------------------------------------------------------------ the Router protocol

    def _member(self, model_id: str) -> RegistryModel:
        m = self._members.get(model_id)
        if m is None:
            m = self._members[model_id] = RegistryModel(
                model_id, self.registry.get(model_id), self.registry.model(model_id)
            )
        return m

    def candidates(self, spec: Routable) -> dict[str, Model]:
        """One routed model per specialist (it serves whatever the run's plan allows), built from every
        model some data class may route to; `ConfigError` if no data class has any."""
        reachable: dict[str, None] = {}
        errors: dict[str, NoRouteError] = {}
        for dc in DATA_CLASSES:
            try:
                plan = self._plan(
                    spec.name,
                    spec.requires,
                    spec,
                    data_class=dc,
                    project='',
                    team='',
                    rules_scoped=False,
                    evaluate=False,
                )
            except NoRouteError as e:
                errors[dc] = e
                continue
            reachable.update(dict.fromkeys(plan.model_ids))
            reachable.update(
                dict.fromkeys(plan.pool)
            )  # what evaluation-driven routing may pick  # rules scoped to a project or team only narrow this
        if not reachable:
            e = errors.get('internal') or next(iter(errors.values()))
            why = '; '.join(f'{m}: {r}' for m, r in e.rejected.items())
            raise ConfigError(
                f'specialist {spec.name!r}: no registered model fits it for any data class ({why})',
                file=self.source,
                key=f'policy.specialists.{spec.name}',
            )
        return {f'route:{spec.name}': RoutedModel(spec.name, [self._member(m) for m in reachable])}

    def route(self, spec: Routable, *, data_class: str, project: str, team: str) -> Route:
        """Plan this agent run (the routed model reads the plan in this task) and say why."""
        deps = RunDeps(
            run_id='', team=team, project=project, data_class=data_class, agent_path=spec.name, specialist=spec.name
        )
        plan = self._plan(spec.name, spec.requires, spec, data_class=data_class, project=project, team=team, deps=deps)
        set_plan(plan)
        info = self.registry.get(plan.primary)
        return PlannedRoute(
            model_id=plan.primary,
            model=None,
            reason=plan.reason,
            usd_per_m_input=info.usd_per_m_input,
            usd_per_m_output=info.usd_per_m_output,
            plan=plan,
        )
