"""`ModelRegistry`: every model a team may use, with its price, latency, capabilities and approvals.

Loaded from the `[models.<id>]` tables of `proctor.toml` (see `load_config`) or built in code:

```python
registry = ModelRegistry({
    'mini': {'model': 'openai:gpt-4o-mini', 'usd_per_m_input': 0.15, 'usd_per_m_output': 0.6,
             'capabilities': ['cheap'], 'data_classes': ['public', 'internal']},
    'local': ModelInfo(model=ScriptedModel(['hi']), data_classes=['public', 'internal', 'confidential']),
})
```

`model` is a pydantic-ai model string (`openai:gpt-4o-mini`, `anthropic:...`), `local:smollm2`,
`openai-compatible:<served name>` with `base_url` (Ollama, vLLM, llama.cpp server), or a `Model`
instance (scripted models in tests and examples). Models are built lazily, on first use, so
listing a registry needs no API key.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_ai.models import Model

from ..exceptions import ConfigError, ModelUnavailableError, UnknownModelError
from ._compat import Compat
from ._models import LOCAL_MODELS, build_model

__all__ = ('ModelInfo', 'ModelRegistry', 'COST_TIERS', 'LATENCY_CLASSES', 'validation_message')

#: Cost tiers, cheapest first. A model's tier is explicit (`cost_tier`) or derived from its mean
#: price per million tokens: under $1 low, under $10 medium, else high.
COST_TIERS: tuple[str, ...] = ('low', 'medium', 'high')
#: Latency classes and the p50 (ms) assumed for each when a model gives no `p50_ms`.
LATENCY_CLASSES: dict[str, int] = {'fast': 500, 'medium': 2000, 'slow': 10000}
DATA_CLASS_NAMES = ('public', 'internal', 'confidential', 'restricted')
DEFAULT_MAX_OUTPUT_TOKENS = 4096


class ModelInfo(BaseModel):
    """One registry entry. Prices are USD per million tokens; `data_classes` is required (no default
    approval: a model sees only the data classes it is listed for)."""

    model_config = ConfigDict(extra='forbid', arbitrary_types_allowed=True, frozen=True)

    model: str | Model
    base_url: str | None = None
    api_key_env: str | None = None  # env var holding the key of an openai-compatible server
    # How an openai-compatible server differs from OpenAI's API: a preset name or a table (`_compat.Compat`).
    compat: Compat | None = None
    version: str | None = None
    usd_per_m_input: NonNegativeFloat = 0.0
    usd_per_m_output: NonNegativeFloat = 0.0
    cost_tier: Literal['low', 'medium', 'high'] | None = None
    latency: Literal['fast', 'medium', 'slow'] | None = None
    p50_ms: PositiveInt | None = None
    context_window: PositiveInt | None = None
    max_output_tokens: PositiveInt | None = None
    capabilities: tuple[str, ...] = ()
    data_classes: tuple[Literal['public', 'internal', 'confidential', 'restricted'], ...] = Field(min_length=1)
    region: str | None = None

    @field_validator('model')
    @classmethod
    def _known_model(cls, v: Any) -> Any:
        if isinstance(v, str):
            _check_model_string(v)
        return v

    @model_validator(mode='after')
    def _base_url_matches(self) -> ModelInfo:
        compatible = isinstance(self.model, str) and self.model.startswith('openai-compatible')
        if compatible and not self.base_url:
            raise ValueError('an openai-compatible model needs base_url (e.g. "http://localhost:11434/v1")')
        if self.base_url and not compatible:
            raise ValueError('base_url is only for model = "openai-compatible:<name>"')
        if self.compat is not None and not compatible:
            raise ValueError('compat is only for model = "openai-compatible:<name>"')
        return self

    @property
    def tier(self) -> str:
        if self.cost_tier is not None:
            return self.cost_tier
        mean = (self.usd_per_m_input + self.usd_per_m_output) / 2
        return 'low' if mean < 1 else 'medium' if mean < 10 else 'high'

    @property
    def expected_latency_ms(self) -> int | None:
        if self.p50_ms is not None:
            return self.p50_ms
        return LATENCY_CLASSES[self.latency] if self.latency else None

    @property
    def output_allowance(self) -> int:
        """Output tokens a budget reserves for one call (`max_output_tokens`, else 4096)."""
        return self.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.usd_per_m_input + output_tokens * self.usd_per_m_output) / 1e6

    @property
    def provider_string(self) -> str:
        return self.model if isinstance(self.model, str) else f'<{type(self.model).__name__} {self.model.model_name}>'

    def summary(self, model_id: str) -> dict[str, Any]:
        """A JSON-able description (what `proctor models list --json` prints)."""
        return {
            'id': model_id,
            'model': self.provider_string,
            'version': self.version,
            'base_url': self.base_url,
            'compat': self.compat.preset
            if self.compat is not None and self.compat.preset
            else ('custom' if self.compat is not None else None),
            'usd_per_m_input': self.usd_per_m_input,
            'usd_per_m_output': self.usd_per_m_output,
            'cost_tier': self.tier,
            'latency': self.latency,
            'p50_ms': self.p50_ms,
            'context_window': self.context_window,
            'max_output_tokens': self.max_output_tokens,
            'capabilities': list(self.capabilities),
            'data_classes': list(self.data_classes),
            'region': self.region,
        }


def _check_model_string(spec: str) -> None:
    """Refuse a model string no provider could serve, without building it (no API key needed)."""
    if spec == 'test' or spec in LOCAL_MODELS:
        return
    if spec.startswith('local:'):
        raise ValueError(f'unknown embedded model {spec!r} (known: {", ".join(LOCAL_MODELS)})')
    if spec.startswith('openai-compatible'):
        if not spec.startswith('openai-compatible:') or not spec.split(':', 1)[1]:
            raise ValueError('write an openai-compatible model as "openai-compatible:<served model name>"')
        return
    from pydantic_ai.models import parse_model_id
    from pydantic_ai.providers import infer_provider_class

    provider, _ = parse_model_id(spec)
    if provider is None:
        raise ValueError(f'unknown model {spec!r}: use "provider:model", e.g. "openai:gpt-4o-mini"')
    if provider.removeprefix('gateway/') in _provider_names():
        return
    try:
        infer_provider_class(provider)
    except (ValueError, ImportError) as e:
        raise ValueError(f'unknown provider {provider!r} in model {spec!r}: {str(e).splitlines()[0][:200]}') from None


@functools.cache
def _provider_names() -> frozenset[str]:
    """The provider names pydantic-ai knows, read from its source: checking one by importing its
    SDK would make `proctor models list` slow. Empty if unreadable (then the import decides)."""
    import inspect
    import re

    from pydantic_ai.providers import infer_provider_class

    try:
        src = inspect.getsource(infer_provider_class)
    except (OSError, TypeError):
        return frozenset()
    return frozenset(re.findall(r"'([a-z0-9][a-z0-9._-]*)'", ' '.join(re.findall(r'case ([^:]+):', src))))


def validation_message(error: ValidationError, prefix: tuple[Any, ...] = ()) -> tuple[str, str]:
    """(dotted key, reason) of the first error of a pydantic `ValidationError`, for `ConfigError`."""
    first = error.errors()[0]
    loc = [*prefix, *(p for p in first['loc'] if not (isinstance(p, str) and p.startswith('function-after')))]
    key = '.'.join(str(p) if not isinstance(p, int) else f'[{p}]' for p in loc).replace('.[', '[')
    reason = first['msg'].removeprefix('Value error, ')
    if first['type'] == 'extra_forbidden':
        reason = 'unknown key'
    more = len(error.errors()) - 1
    return key, reason + (f' (and {more} more error{"s" if more > 1 else ""})' if more else '')


class ModelRegistry:
    """Models by id. Unknown ids raise `UnknownModelError`; `bind` swaps a model's transport (e.g. a
    scripted model for tests) while keeping its prices and approvals."""

    def __init__(self, models: Mapping[str, ModelInfo | Mapping[str, Any]], *, source: str | None = None) -> None:
        self.source = source
        self._infos: dict[str, ModelInfo] = {}
        for model_id, info in models.items():
            if not isinstance(model_id, str) or not model_id.strip():
                raise ConfigError('a model id must be a non-empty string', file=source, key='models')
            if isinstance(info, ModelInfo):
                self._infos[model_id] = info
                continue
            try:
                self._infos[model_id] = ModelInfo.model_validate(info)
            except ValidationError as e:
                key, reason = validation_message(e, ('models', model_id))
                raise ConfigError(reason, file=source, key=key) from None
        if not self._infos:
            raise ConfigError('no models: add at least one [models.<id>] table', file=source, key='models')
        self._built: dict[str, Model] = {}
        self._lock = threading.Lock()

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._infos

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)

    def ids(self) -> list[str]:
        return list(self._infos)

    def get(self, model_id: str) -> ModelInfo:
        try:
            return self._infos[model_id]
        except KeyError:
            raise UnknownModelError(model_id, known=list(self._infos), hint=self._where()) from None

    def _where(self) -> str:
        return f'not in the registry{" of " + self.source if self.source else ""}'

    def bind(self, model_id: str, model: Model) -> None:
        """Serve `model_id` with `model` (prices, approvals and capabilities stay as registered)."""
        info = self.get(model_id)
        if not isinstance(model, Model):
            raise ConfigError(
                f'can only bind a pydantic-ai Model, not {type(model).__name__}', key=f'models.{model_id}'
            )
        self._infos[model_id] = info.model_copy(update={'model': model, 'base_url': None})
        self._built.pop(model_id, None)

    def model(self, model_id: str) -> Model:
        """The pydantic-ai `Model` serving `model_id` (built once, on first use)."""
        info = self.get(model_id)
        built = self._built.get(model_id)
        if built is not None:
            return built
        with self._lock:
            built = self._built.get(model_id)
            if built is None:
                built = self._build(model_id, info)
                self._built[model_id] = built
        return built

    def _build(self, model_id: str, info: ModelInfo) -> Model:
        spec = info.model
        try:
            if isinstance(spec, str) and spec.startswith('openai-compatible:'):
                from ._openai_compat import build_openai_compatible

                key = os.environ.get(info.api_key_env, '') if info.api_key_env else ''
                assert info.base_url is not None  # checked when the entry was validated
                return build_openai_compatible(
                    spec.split(':', 1)[1], base_url=info.base_url, api_key=key or None, compat=info.compat
                )
            return build_model(spec)
        except (UnknownModelError, ModelUnavailableError) as e:
            raise ConfigError(
                f'model {model_id!r} ({info.provider_string}) cannot be built: {e}',
                file=self.source,
                key=f'models.{model_id}',
            ) from e

    def summaries(self) -> list[dict[str, Any]]:
        return [info.summary(mid) for mid, info in self._infos.items()]
