"""The `Guardrail` protocol: a check at one of five hook points that allows, redacts, blocks, or asks
for approval.

Hooks: `input` (the task and every subtask), `output` (every agent result), `tool_call` (a tool's
arguments before it runs), `tool_output` (a tool's result before a model sees it) and
`memory_write` (text about to be stored in shared memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ('Hook', 'HOOKS', 'GuardContext', 'Decision', 'Guardrail')

Hook = Literal['input', 'output', 'tool_call', 'tool_output', 'memory_write']
HOOKS: tuple[Hook, ...] = ('input', 'output', 'tool_call', 'tool_output', 'memory_write')


@dataclass(frozen=True)
class GuardContext:
    """Where a payload is being checked."""

    hook: Hook
    run_id: str
    agent_path: str
    specialist: str
    data_class: str
    tool: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What a guard decided. `payload` is the (possibly redacted) payload for `redact`."""

    action: Literal['allow', 'redact', 'block', 'approve']
    reason: str = ''
    payload: Any = None
    role: str | None = None  # for 'approve': the role that must decide
    # For 'approve': how long the approval stays open (None: no expiry), what a rejection does
    # ('tell_agent': the model gets a denial as the tool result; 'stop_run': `ApprovalRejected`),
    # and the role that gets a fresh approval when this one expires (None: expiry rejects).
    expires_after_s: float | None = None
    on_reject: Literal['tell_agent', 'stop_run'] = 'tell_agent'
    escalate_to: str | None = None
    # For 'block' at the tool_call hook: the call is skipped and the model told why (the run goes
    # on), instead of the run stopping with `GuardrailTripped`.
    tell_agent: bool = False

    @classmethod
    def allow(cls) -> Decision:
        return _ALLOW

    @classmethod
    def redact(cls, payload: Any, reason: str) -> Decision:
        return cls('redact', reason, payload)

    @classmethod
    def block(cls, reason: str, *, tell_agent: bool = False) -> Decision:
        return cls('block', reason, tell_agent=tell_agent)

    @classmethod
    def require_approval(
        cls,
        reason: str,
        *,
        role: str = 'operator',
        expires_after_s: float | None = None,
        on_reject: Literal['tell_agent', 'stop_run'] = 'tell_agent',
        escalate_to: str | None = None,
    ) -> Decision:
        return cls(
            'approve', reason, role=role, expires_after_s=expires_after_s, on_reject=on_reject, escalate_to=escalate_to
        )


_ALLOW = Decision('allow')


@runtime_checkable
class Guardrail(Protocol):
    """A check. `hooks` says where it runs; `check` must be fast and side-effect free."""

    name: str
    hooks: frozenset[Hook]

    def check(self, payload: Any, ctx: GuardContext) -> Decision: ...
