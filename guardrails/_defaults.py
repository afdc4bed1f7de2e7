"""`default_guardrails()`: the guards a team gets when it asks for sensible defaults."""

from __future__ import annotations

from typing import Any, Literal

from ._injection import InjectionGuard
from ._limits import InputSizeLimit
from ._outbound import OutboundGuard
from ._pii import PIIGuard

__all__ = ('default_guardrails',)


def default_guardrails(*, outbound: Literal['block', 'approve', 'stop_run'] = 'block') -> list[Any]:
    """Input size limits; PII and secret redaction on tasks, results, tool outputs and memory writes;
    secrets and personal data in the arguments of tool calls that act or send (writes, commands,
    memory writes, MCP calls) not redacted (a file the coding agent writes is not rewritten) but
    blocked, the model told why (`outbound='approve'`: sent to an operator's approval, `'stop_run'`:
    the run stops; `OutboundGuard`); prompt-injection quarantine on tool outputs, results and memory writes."""
    return [
        InputSizeLimit(),
        PIIGuard(hooks=('input', 'output', 'tool_output', 'memory_write')),
        OutboundGuard(action=outbound),
        InjectionGuard(),
    ]
