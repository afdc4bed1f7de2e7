"""`proctor.toml`: the model registry, the routing policy and the budgets, in one version-controlled file.

```toml
[models.mini]                      # one table per model id
model = "openai:gpt-4o-mini"
usd_per_m_input = 0.15
usd_per_m_output = 0.60
capabilities = ["cheap"]
data_classes = ["public", "internal"]

[policy]
degrade_at = 0.8                   # near a budget's limit, prefer the cheapest approved model

[policy.specialists.coding]
preferred = "sonnet"
fallback = ["mini"]
requires = ["coding"]
escalate = ["opus"]                # when the output fails validation

[policy.specialists.triage]        # evaluation-driven: the cheapest approved model passing the suite
select = "cheapest-passing"
suite = "triage"                   # evals/triage.toml, run by `proctor eval run triage`
min_pass_rate = 0.9
max_age = "14d"

[[policy.rules]]
data_class = ["confidential", "restricted"]
regions = ["eu"]

[budgets.project.acme]
usd = 50.0
period = "month"

[evals]
dir = "evals"                      # where the suites live, relative to this file
```

Every error is a `ConfigError` naming the file, the key and the reason (malformed TOML: its line).
Other top-level tables are left to the areas that own them.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    model_validator,
)
from pydantic_ai.models import Model

from ..exceptions import ConfigError, UnknownModelError
from ._registry import ModelRegistry, validation_message

__all__ = (
    'RoutingPolicy',
    'SpecialistPolicy',
    'RoutingRule',
    'BudgetSpec',
    'EvalsConfig',
    'ProctorConfig',
    'load_config',
    'parse_age',
)

DataClass = Literal['public', 'internal', 'confidential', 'restricted']
Tier = Literal['low', 'medium', 'high']
_SECTIONS = ('models', 'policy', 'budgets', 'evals')


class _Strict(BaseModel):
    model_config = ConfigDict(extra='forbid', frozen=True)


class SpecialistPolicy(_Strict):
    """How one specialist is routed: its chain (preferred, then fallbacks) and its constraints."""

    preferred: str | None = None
    fallback: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    max_cost_tier: Tier | None = None
    max_latency_ms: PositiveInt | None = None
    # Tried in order once output validation fails (None: the policy-wide `escalate`). Approval, region,
    # allow-list and capabilities bind them; cost tier and latency do not (stronger is the point).
    escalate: tuple[str, ...] | None = None
    data_classes: tuple[DataClass, ...] = ()  # must be routable for these (checked at load time)
    # Evaluation-driven routing (`proctor.models._eval_route`): the cheapest approved model whose latest
    # complete evaluation on `suite` passed at least `min_pass_rate`, no older than `max_age`.
    select: Literal['static', 'cheapest-passing'] = 'static'
    suite: str | None = None
    min_pass_rate: float = Field(default=0.9, ge=0, le=1)
    max_age: str = '14d'

    @model_validator(mode='after')
    def _selection(self) -> SpecialistPolicy:
        if self.select == 'cheapest-passing' and not self.suite:
            raise ValueError('select = "cheapest-passing" needs suite = "<evaluation suite>"')
        parse_age(self.max_age)
        return self


def parse_age(value: str) -> float:
    """'90m', '12h', '14d', '2w' -> seconds."""
    import re

    m = re.fullmatch(r'\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*', value or '')
    if not m:
        raise ValueError(f'max_age {value!r}: write a duration like "12h", "14d" or "2w"')
    return float(m.group(1)) * {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}[m.group(2)]


class EvalsConfig(_Strict):
    """The `[evals]` table: where the suites live (relative to the proctor.toml)."""

    dir: str = 'evals'


class RoutingRule(_Strict):
    """Constraints for the runs a rule matches (every match key given must match; a list means any of)."""

    data_class: DataClass | tuple[DataClass, ...] | None = None
    project: str | tuple[str, ...] | None = None
    team: str | tuple[str, ...] | None = None
    specialist: str | tuple[str, ...] | None = None
    requires: tuple[str, ...] = ()
    max_cost_tier: Tier | None = None
    max_latency_ms: PositiveInt | None = None
    regions: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None  # allow-list

    def matches(self, *, data_class: str, project: str, team: str, specialist: str) -> bool:
        for want, got in (
            (self.data_class, data_class),
            (self.project, project),
            (self.team, team),
            (self.specialist, specialist),
        ):
            if want is not None and got not in ((want,) if isinstance(want, str) else want):
                return False
        return True


class CapabilitySelect(_Strict):
    """`[policy.capabilities.<capability>]`: evaluation-driven routing for every specialist that requires
    the capability and has no `select` of its own."""

    select: Literal['static', 'cheapest-passing'] = 'cheapest-passing'
    suite: str
    min_pass_rate: float = Field(default=0.9, ge=0, le=1)
    max_age: str = '14d'

    @model_validator(mode='after')
    def _age(self) -> CapabilitySelect:
        parse_age(self.max_age)
        return self


class RoutingPolicy(_Strict):
    """The `[policy]` table."""

    default: tuple[str, ...] = ()  # chain for specialists with no entry and no declared model
    escalate: tuple[str, ...] = ()
    degrade_at: float | None = Field(default=None, gt=0, le=1)
    data_classes: tuple[DataClass, ...] = ()  # every listed specialist must be routable for these
    specialists: dict[str, SpecialistPolicy] = Field(default_factory=dict)
    capabilities: dict[str, CapabilitySelect] = Field(default_factory=dict)
    rules: tuple[RoutingRule, ...] = ()


class BudgetSpec(_Strict):
    """One `[budgets.<level>.<name>]` table: a limit in USD and/or tokens per period."""

    usd: NonNegativeFloat | None = None
    tokens: NonNegativeInt | None = None
    period: Literal['total', 'day', 'month', 'run'] = 'total'

    @model_validator(mode='after')
    def _some_limit(self) -> BudgetSpec:
        if self.usd is None and self.tokens is None:
            raise ValueError('a budget needs usd = ... or tokens = ...')
        return self


class _Budgets(_Strict):
    team: dict[str, BudgetSpec] = Field(default_factory=dict)
    project: dict[str, BudgetSpec] = Field(default_factory=dict)
    specialist: dict[str, BudgetSpec] = Field(default_factory=dict)
    model: dict[str, BudgetSpec] = Field(default_factory=dict)
    run: BudgetSpec | None = None


@dataclass
class ProctorConfig:
    """What a `proctor.toml` holds for routing: registry, policy, budgets."""

    registry: ModelRegistry
    policy: RoutingPolicy
    budgets: list[Any] = field(default_factory=list)  # list[Budget]
    path: str | None = None
    evals: EvalsConfig = field(default_factory=lambda: EvalsConfig())

    @property
    def evals_dir(self) -> Path:
        """The suites' folder: `[evals] dir`, relative to this file's folder (default `evals/`)."""
        base = Path(self.path).parent if self.path else Path.cwd()
        return (base / self.evals.dir).resolve()


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            'file not found (pass --config PATH or create it)' if not path.exists() else 'not a file', file=str(path)
        )
    try:
        with path.open('rb') as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f'invalid TOML: {e}', file=str(path)) from None
    except OSError as e:
        raise ConfigError(f'cannot read: {e.strerror}', file=str(path)) from None


def parse_policy(raw: Any, *, source: str | None = None) -> RoutingPolicy:
    if isinstance(raw, RoutingPolicy):
        return raw
    try:
        return RoutingPolicy.model_validate(raw or {})
    except ValidationError as e:
        key, reason = validation_message(e, ('policy',))
        raise ConfigError(reason, file=source, key=key) from None


def parse_budgets(raw: Any, *, source: str | None = None) -> list[Any]:
    from ._budget import Budget

    try:
        parsed = _Budgets.model_validate(raw or {})
    except ValidationError as e:
        key, reason = validation_message(e, ('budgets',))
        raise ConfigError(reason, file=source, key=key) from None
    out: list[Budget] = []
    for level in ('team', 'project', 'specialist', 'model'):
        for name, spec in getattr(parsed, level).items():
            out.append(Budget(level, name, usd=spec.usd, tokens=spec.tokens, period=spec.period))  # type: ignore[arg-type]
    if parsed.run is not None:
        out.append(Budget('run', '*', usd=parsed.run.usd, tokens=parsed.run.tokens, period='run'))
    return out


def load_config(path: str | os.PathLike[str], *, models: Mapping[str, Model] | None = None) -> ProctorConfig:
    """Parse and validate `path`. `models` binds registry ids to `Model` instances (scripted models)."""
    p = Path(path)
    data = _read(p)
    source = str(p)
    for key in data:
        if key not in _SECTIONS:
            close = difflib.get_close_matches(key, _SECTIONS, n=1, cutoff=0.75)
            if close:
                raise ConfigError(f'unknown section; did you mean [{close[0]}]?', file=source, key=key)
    if 'models' not in data or not isinstance(data['models'], dict):
        raise ConfigError('no [models.<id>] tables', file=source, key='models')
    for mid, table in data['models'].items():
        if not isinstance(table, dict):
            raise ConfigError('must be a table ([models.<id>])', file=source, key=f'models.{mid}')
    registry = ModelRegistry(data['models'], source=source)
    for mid, model in (models or {}).items():
        if mid not in registry:
            raise UnknownModelError(mid, known=registry.ids(), hint=f'cannot bind it: not in {source}')
        registry.bind(mid, model)
    policy = parse_policy(data.get('policy'), source=source)
    budgets = parse_budgets(data.get('budgets'), source=source)
    try:
        evals = EvalsConfig.model_validate(data.get('evals') or {})
    except ValidationError as e:
        key, reason = validation_message(e, ('evals',))
        raise ConfigError(reason, file=source, key=key) from None
    return ProctorConfig(registry=registry, policy=policy, budgets=budgets, path=source, evals=evals)
