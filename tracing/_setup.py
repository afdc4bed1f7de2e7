"""Which OpenTelemetry tracer provider a team uses (the tracing area owns the details)."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from .._state import StateStore

__all__ = ('resolve_tracer_provider',)


def resolve_tracer_provider(tracer_provider: Any, store: StateStore) -> Any:
    """The provider spans of a team go to: the one given, else the global one."""
    return tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
