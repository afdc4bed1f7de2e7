"""Guardrails at five hook points (input, output, tool call, tool output, memory write) and approvals."""

from ._pipeline import GuardOutcome, GuardrailPipeline
from ._protocol import HOOKS, Decision, GuardContext, Guardrail, Hook

__all__ = ('HOOKS', 'Decision', 'GuardContext', 'GuardOutcome', 'Guardrail', 'GuardrailPipeline', 'Hook')
