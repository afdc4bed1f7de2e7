"""`GuardrailObserver`: a team's guardrails at the tool hooks, and the approval checkpoints they ask for.

`before_tool_call` runs the `tool_call` guards on the arguments: a redaction changes them, a block
raises `GuardrailTripped` (or, a block that tells the agent, skips the call with the reason as its
result), and a require-approval decision (from an `ApprovalPolicy` or any guard)
opens an approval and waits for it. Approved: the tool runs. Rejected or expired: the model gets the
denial as the tool result (`ToolCallDenied`) and goes on, or the run stops with `ApprovalRejected`
if the policy says `on_reject='stop_run'`. `after_tool_call` runs the `tool_output` guards on the
result before the model sees it (PII redaction, prompt-injection quarantine).

`Team` adds one automatically when its guardrails have tool hooks.
"""

from __future__ import annotations

from typing import Any

from ..core._events import RunObserver, ToolCall, ToolCallDenied
from ..exceptions import ApprovalRejected, GuardrailTripped
from ..state._store import StateStore
from ._approvals import Approval
from ._gate import ApprovalGate, ApprovalRequest
from ._pipeline import GuardrailPipeline
from ._protocol import Decision, GuardContext, Hook

__all__ = ('GuardrailObserver', 'denial_message')


def denial_message(a: Approval) -> str:
    """What the model is told when an approval is rejected or expires (like pydantic-ai's `ToolDenied`)."""
    if a.status == 'expired':
        return f'The tool call was denied: approval {a.approval_id} expired before anyone decided it. Do not retry it.'
    return f'The tool call was denied by {a.decider} (approval {a.approval_id}): {a.reason or "no reason given"}'


class GuardrailObserver(RunObserver):
    """Applies `pipeline` at the tool_call and tool_output hooks and waits for the approvals it requires.

    `store` holds the approvals (and records guard decisions when `record` is true).
    """

    def __init__(
        self, pipeline: GuardrailPipeline, store: StateStore, *, record: bool = True, gate: ApprovalGate | None = None
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.record = record
        self.gate = gate or ApprovalGate(store)

    def _ctx(self, hook: Hook, call: ToolCall) -> GuardContext:
        d = call.deps
        return GuardContext(
            hook=hook,
            run_id=d.run_id,
            agent_path=d.agent_path,
            specialist=d.specialist,
            data_class=d.data_class,
            tool=call.tool,
            extra={'key': call.idempotency_key},
        )

    async def before_tool_call(self, call: ToolCall) -> dict[str, Any]:
        if not self.pipeline.has('tool_call'):
            return call.args
        # Synchronous on purpose: see `ApprovalGate.decide` on keeping DBOS operation order.
        try:
            outcome = self.pipeline.apply(
                'tool_call',
                call.args,
                self._ctx('tool_call', call),
                store=self.store if self.record else None,
                key=call.idempotency_key,
            )
        except GuardrailTripped as e:
            if not e.tell_agent:
                raise
            raise ToolCallDenied(f'The {call.tool} call was blocked by guardrail {e.guard!r}: {e.reason}') from None
        args = outcome.payload if isinstance(outcome.payload, dict) else call.args
        if outcome.approval is not None:
            await self.wait_for_approval(call, args, outcome.approval)
        return args

    async def wait_for_approval(
        self, call: ToolCall, args: dict[str, Any], decision: Decision, *, kind: str = 'tool', attempt: int = 0
    ) -> Approval:
        """Open the approval `decision` asks for and wait; returns it approved, or raises as its policy says."""
        d = call.deps
        req = ApprovalRequest(
            key=call.idempotency_key,
            run_id=d.run_id,
            agent_path=d.agent_path,
            tool=call.tool,
            args=args,
            data_class=d.data_class,
            role=decision.role or 'operator',
            reason=decision.reason,
            expires_after_s=decision.expires_after_s,
            escalate_to=decision.escalate_to,
            delegation_id=d.delegation_id,
            kind=kind,
            attempt=attempt,
        )
        a = await self.gate.decide(req)
        if a.status == 'approved':
            return a
        if decision.on_reject == 'stop_run':
            raise ApprovalRejected(
                approval_id=a.approval_id, tool=call.tool, reason=a.reason or a.status, run_id=d.run_id
            )
        raise ToolCallDenied(denial_message(a))

    async def after_tool_call(self, call: ToolCall, result: Any) -> Any:
        if not self.pipeline.has('tool_output'):
            return result
        outcome = self.pipeline.apply(
            'tool_output',
            result,
            self._ctx('tool_output', call),
            store=self.store if self.record else None,
            key=call.idempotency_key,
        )
        return outcome.payload
