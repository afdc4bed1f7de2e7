"""Which OpenTelemetry tracer provider a team uses, and what it exports to.

- The local trace store is always on: every team's provider gets a `StoreSpanProcessor` for the
  team's state store (added once per provider and store).
- `tracer_provider=` given: that provider (you own its other exporters; proctor adds the store).
- Not given, and the global provider is an SDK `TracerProvider` (you configured OpenTelemetry):
  the global one, plus the store.
- Otherwise (the global provider is the default no-op/proxy one): a proctor-owned provider per
  state store, with the store and, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, an OTLP/HTTP exporter. Nothing else by default.

Sampling follows the provider (`OTEL_TRACES_SAMPLER` for the owned one): traces may be sampled,
the audit log never is.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import anyio
import anyio.to_thread
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from .._log import get_logger
from ..state._store import StateStore
from ..state._writer import flusher
from ._store import StoreSpanProcessor

__all__ = (
    'instrumentation_settings',
    'trace_content',
    'resolve_tracer_provider',
    'store_processor',
    'flush_store',
    'settle',
    'otlp_endpoint',
)

log = get_logger('proctor.tracing')

_lock = threading.Lock()
_owned: dict[tuple[str, str | None], TracerProvider] = {}
_attached: weakref.WeakKeyDictionary[Any, dict[str, StoreSpanProcessor]] = weakref.WeakKeyDictionary()


def otlp_endpoint() -> str | None:
    """The OTLP endpoint the environment names, if any."""
    return os.environ.get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') or os.environ.get('OTEL_EXPORTER_OTLP_ENDPOINT') or None


def store_processor(provider: Any, store: StateStore, *, owned: bool = False) -> StoreSpanProcessor | None:
    """The store processor of `store` on `provider`, added on first use (None: not an SDK provider)."""
    if not isinstance(provider, TracerProvider):
        return None
    with _lock:
        procs = _attached.setdefault(provider, {})
        proc = procs.get(store.url)
        if proc is None:
            proc = StoreSpanProcessor(store, owned=owned)
            provider.add_span_processor(proc)
            procs[store.url] = proc
        return proc


def _owned_provider(store: StateStore) -> TracerProvider:
    endpoint = otlp_endpoint()
    key = (store.url, endpoint)
    with _lock:
        provider = _owned.get(key)
    if provider is not None:
        return provider
    from opentelemetry.sdk.resources import Resource

    attrs = {} if os.environ.get('OTEL_SERVICE_NAME') else {'service.name': 'proctor'}
    provider = TracerProvider(resource=Resource.create(attrs))
    store_processor(provider, store, owned=True)
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    with _lock:
        return _owned.setdefault(key, provider)


def trace_content() -> bool:
    """Whether spans carry prompts and outputs: yes unless `PROCTOR_TRACE_CONTENT=0` (then nothing of
    a confidential task reaches a collector; replay recordings and the audit log are unaffected)."""
    return os.environ.get('PROCTOR_TRACE_CONTENT', '1').strip().lower() not in ('0', 'false', 'no', 'off')


def instrumentation_settings(tracer_provider: Any) -> Any:
    """pydantic-ai's GenAI instrumentation settings for a team's agents (`Team(instrumentation='pydantic-ai')`),
    content as `trace_content` says."""
    from pydantic_ai.models.instrumented import InstrumentationSettings

    return InstrumentationSettings(tracer_provider=tracer_provider, include_content=trace_content())


def resolve_tracer_provider(tracer_provider: Any, store: StateStore) -> Any:
    """The provider a team on `store` traces to (see the module docstring); the store is always on it."""
    if tracer_provider is not None:
        if store_processor(tracer_provider, store) is None and not isinstance(
            tracer_provider, trace.NoOpTracerProvider
        ):
            log.warning(
                'tracer provider is not an OpenTelemetry SDK TracerProvider: the local trace store gets no spans',
                provider=type(tracer_provider).__name__,
            )
        return tracer_provider
    global_provider = trace.get_tracer_provider()
    if isinstance(global_provider, TracerProvider):
        store_processor(global_provider, store)
        return global_provider
    return _owned_provider(store)


def flush_store(store: StateStore) -> None:
    """Write the spans, recordings and audit records buffered for `store` in this process now (blocking)."""
    flusher.flush_store(store)


async def settle(store: StateStore, *, spans: bool = True) -> None:
    """Write everything queued for `store` in this process (recordings, audit records, spans) now,
    in one transaction. Call it as a durable workflow (a run, a delegation) ends: once it has
    completed, its recovery does not run its hooks again, so what they queued must be stored; and
    as any run ends, so its trace and recording can be read as soon as it returns.

    `spans=False`, for a checkpoint in mid-run: write (everything) only if something that must be
    stored is queued; spans alone wait for the next write (the background writer's, within a second),
    and so do the placeholder rows of spans still running (`StoreSpanProcessor.take`).
    So of the branches of one fan-out reaching their checkpoints together, the first writes for all.

    On SQLite the write (one short local transaction) runs inline, cheaper than a thread hop; a
    server database's round trips run in a worker thread."""
    if not flusher.pending(store, must_write=not spans):
        return
    with anyio.CancelScope(shield=True):
        await store.call(flusher.flush_store, store, checkpoint=not spans)
