"""The routed model: pydantic-ai's `FallbackModel` over the approved chain of the current plan.

`RoutedModel` is the one model registered per specialist (so a request is one checkpointed step
of the run's recording whatever model serves it). On each request it reads the plan the router made
for this agent run, picks the tier (escalating after failed output validation) and asks a
`FallbackModel` over that tier's models. Provider failures that another model would not repeat
(429, 408, 5xx, timeouts, connection errors) move on to the next approved model; any other error
(a 400, an auth error) is raised as is. Every attempt is stamped on the response's `metadata`
(or on the error) so the ledger records it, durably, from the step's recorded result.

Both report the model that serves as theirs (`model_name`, `system`): pydantic-ai's `chat` span is
named after the provider's model (`chat smollm2`, `gen_ai.request.model`, `gen_ai.provider.name`),
and the registry id, version and route reason go on it as `proctor.*` attributes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as otel_trace
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelRateLimitError,
    ModelRequestTimeout,
    ModelServerError,
    ModelUnavailableError,
)
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from ..exceptions import NoRouteError, RunError
from ._errors import mark_model, mark_specialist
from ._plan import RoutePlan, plan_for, skipped

if TYPE_CHECKING:
    from pydantic_ai.tools import RunContext

    from ._registry import ModelInfo

__all__ = ('RoutedModel', 'RegistryModel', 'is_transient', 'attempts_of', 'ATTEMPTS_ATTR')

#: Where a failed request carries its attempts (the `_pydantic_ai_` prefix survives DBOS pickling).
ATTEMPTS_ATTR = '_pydantic_ai_proctor_attempts'
_TRANSIENT_TYPES = (
    ModelRateLimitError,
    ModelUnavailableError,
    ModelServerError,
    ModelConnectionError,
    ModelRequestTimeout,
)

_attempts: ContextVar[list[dict[str, Any]] | None] = ContextVar('proctor_attempts', default=None)
_current: ContextVar[tuple[RoutePlan, int] | None] = ContextVar('proctor_current_plan', default=None)


def is_transient(exc: Exception) -> bool:
    """A provider failure another model would not repeat: fall back. Other 4xx: do not."""
    if isinstance(exc, ModelHTTPError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, ModelAPIError):
        return False
    return isinstance(exc, (TimeoutError, ConnectionError))


def _describe(e: BaseException) -> str:
    return f'{type(e).__name__}: {e}'[:500]


def attempts_of(obj: Any) -> list[dict[str, Any]]:
    """The attempts stamped on a response (`metadata['proctor']`) or carried by an error."""
    if isinstance(obj, ModelResponse):
        return list(((obj.metadata or {}).get('proctor') or {}).get('attempts') or [])
    return list(getattr(obj, ATTEMPTS_ATTR, None) or [])


class RegistryModel(WrapperModel):
    """A registry model as a member of a chain: named by its registry id, refuses a data class it is
    not approved for (a second line of defence behind the router), records each attempt."""

    def __init__(self, model_id: str, info: ModelInfo, wrapped: Model) -> None:
        super().__init__(wrapped)
        self.proctor_id = model_id
        self.info = info

    @property
    def model_name(self) -> str:
        """The provider's model (what `chat` spans and `gen_ai.request.model` name); the id is `proctor_id`."""
        return self.wrapped.model_name

    @property
    def label(self) -> str:
        """How errors name this model: its registry id, and where it is served."""
        info = self.info
        if not isinstance(info.model, str):
            return self.proctor_id
        return f'{self.proctor_id} ({info.model}{" at " + info.base_url if info.base_url else ""})'

    def _describe_span(self, plan: RoutePlan | None, tier: int) -> None:
        """Point the current `chat` span at this model: a fallback serves another model than the span opened for."""
        span = otel_trace.get_current_span()
        if not span.is_recording() or (getattr(span, 'attributes', None) or {}).get('gen_ai.operation.name') != 'chat':
            return
        attrs: dict[str, Any] = {
            'gen_ai.request.model': self.wrapped.model_name,
            'gen_ai.provider.name': self.wrapped.system,
            'gen_ai.system': self.wrapped.system,
            'proctor.model_id': self.proctor_id,
            'proctor.route_tier': tier,
        }
        if self.info.version:
            attrs['proctor.model_version'] = self.info.version
        if plan is not None:
            attrs['proctor.route_reason'] = plan.reason
        span.set_attributes(attrs)
        span.update_name(f'chat {self.wrapped.model_name}')

    def _admit(self) -> tuple[RoutePlan | None, int]:
        plan, tier = _current.get() or (None, 0)
        if plan is not None and plan.data_class not in self.info.data_classes:
            raise NoRouteError(
                specialist=plan.specialist,
                data_class=plan.data_class,
                rejected={self.proctor_id: f'not approved for {plan.data_class}'},
            )
        return plan, tier

    def _record(self, tier: int, started: float, error: BaseException | None) -> None:
        log = _attempts.get()
        if log is None:
            return
        log.append(
            {
                'seq': len(log),
                'model_id': self.proctor_id,
                'tier': tier,
                'status': 'ok' if error is None else ('refused' if isinstance(error, NoRouteError) else 'failed'),
                'error': None if error is None else _describe(error),
                'elapsed_ms': round((time.perf_counter() - started) * 1000, 3),
            }
        )

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        started = time.perf_counter()
        plan, tier = _current.get() or (None, 0)
        self._describe_span(plan, tier)
        try:
            self._admit()
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        except Exception as e:
            self._record(tier, started, e)
            mark_model(e, self.label)
            raise
        self._record(tier, started, None)
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        started = time.perf_counter()
        plan, tier = _current.get() or (None, 0)
        self._describe_span(plan, tier)
        try:
            self._admit()
            cm = self.wrapped.request_stream(messages, model_settings, model_request_parameters, run_context)
            stream = await cm.__aenter__()
        except Exception as e:
            self._record(tier, started, e)
            mark_model(e, self.label)
            raise
        self._record(tier, started, None)
        try:
            yield stream
        except BaseException as e:
            if not await cm.__aexit__(type(e), e, e.__traceback__):
                raise
        else:
            await cm.__aexit__(None, None, None)


class RoutedModel(FallbackModel):
    """The model of one specialist under a `ModelRouter`: serves the current plan's chain."""

    def __init__(self, specialist: str, members: list[RegistryModel]) -> None:
        super().__init__(members[0], *members[1:], fallback_on=is_transient)
        self.specialist = specialist
        self._members = {m.proctor_id: m for m in members}
        self._chains: dict[tuple[str, ...], FallbackModel] = {}

    def _serving(self) -> RegistryModel | None:
        """The first model of the current plan's chain (what serves unless it fails), if a plan is set."""
        plan = plan_for(self.specialist)
        if plan is None:
            return None
        return self._members.get(plan.primary)

    @property
    def model_name(self) -> str:
        """The provider's model the plan serves first (`route:<specialist>` outside a run)."""
        member = self._serving()
        return member.model_name if member is not None else f'route:{self.specialist}'

    @property
    def system(self) -> str:
        member = self._serving()
        return member.system if member is not None else super().system

    def _plan(self, messages: list[ModelMessage]) -> tuple[RoutePlan, int, FallbackModel]:
        plan = plan_for(self.specialist)
        if plan is None:
            raise RunError(f'no routing decision for specialist {self.specialist!r}: run it through its Team')
        tier = plan.tier_for(messages)
        skip = skipped()
        chain = tuple(m for m in plan.tiers[tier] if m not in skip) or plan.tiers[tier]
        fm = self._chains.get(chain)
        if fm is None:
            missing = [m for m in chain if m not in self._members]
            if missing:  # pragma: no cover - the router registers every model a plan can name
                raise RunError(f'model(s) {missing} are not registered for specialist {self.specialist!r}')
            fm = self._chains[chain] = FallbackModel(*(self._members[m] for m in chain), fallback_on=is_transient)
        return plan, tier, fm

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        plan, tier, fm = self._plan(messages)
        log: list[dict[str, Any]] = [
            {'seq': i, 'model_id': m, 'tier': tier, 'status': 'skipped', 'error': why, 'elapsed_ms': 0.0}
            for i, (m, why) in enumerate(skipped().items())
        ]
        t_log, t_cur = _attempts.set(log), _current.set((plan, tier))
        try:
            response = await fm.request(messages, model_settings, model_request_parameters)
        except BaseException as e:
            setattr(e, ATTEMPTS_ATTR, log)
            mark_specialist(e, self.specialist)
            raise
        finally:
            _attempts.reset(t_log)
            _current.reset(t_cur)
        served = next((a['model_id'] for a in reversed(log) if a['status'] == 'ok'), plan.tiers[tier][0])
        version = self._members[served].info.version if served in self._members else None
        response.metadata = {
            **(response.metadata or {}),
            'proctor': {'model_id': served, 'version': version, 'tier': tier, 'attempts': log},
        }
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        plan, tier, fm = self._plan(messages)
        t_cur = _current.set((plan, tier))
        try:
            async with fm.request_stream(messages, model_settings, model_request_parameters, run_context) as stream:
                yield stream
        except BaseException as e:
            mark_specialist(e, self.specialist)
            raise
        finally:
            try:
                _current.reset(t_cur)
            except ValueError:  # the stream was closed from another context
                pass
