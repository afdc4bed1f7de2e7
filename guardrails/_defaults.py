"""`default_guardrails()`: the guards a team gets when it asks for sensible defaults."""

from __future__ import annotations

from typing import Any

from ._injection import InjectionGuard
from ._limits import InputSizeLimit
from ._pii import PIIGuard

__all__ = ('default_guardrails',)


def default_guardrails() -> list[Any]:
    """Input size limits; PII and secret redaction on tasks, results, tool outputs and memory writes
    (not on tool arguments, so a file the coding agent writes is not rewritten); prompt-injection
    quarantine on tool outputs, results and memory writes."""
    return [
        InputSizeLimit(),
        PIIGuard(hooks=('input', 'output', 'tool_output', 'memory_write')),
        InjectionGuard(),
    ]
