"""Guardrails at five hook points (input, output, tool call, tool output, memory write), the built-in
guards, and approval checkpoints (`ApprovalPolicy`, `Approval`, `ApprovalQueue`)."""

from ._approvals import Approval, ApprovalQueue, approval_id_for
from ._config import guardrails_from, load_guardrails
from ._data_class import DataClassGuard
from ._defaults import default_guardrails
from ._gate import ApprovalGate, ApprovalRequest
from ._injection import QUARANTINE_MARK, InjectionGuard, score_injection
from ._limits import InputSizeLimit
from ._observer import GuardrailObserver, denial_message
from ._pii import PII_KINDS, PIIGuard, find_pii, iban_ok, luhn_ok, redact_text
from ._pipeline import GuardOutcome, GuardrailPipeline
from ._policy import ApprovalPolicy, ApprovalRule
from ._protocol import HOOKS, Decision, GuardContext, Guardrail, Hook
from ._tools import ToolPolicy

__all__ = (
    'HOOKS',
    'PII_KINDS',
    'QUARANTINE_MARK',
    'Approval',
    'ApprovalGate',
    'ApprovalPolicy',
    'ApprovalQueue',
    'ApprovalRequest',
    'ApprovalRule',
    'DataClassGuard',
    'Decision',
    'GuardContext',
    'GuardOutcome',
    'Guardrail',
    'GuardrailObserver',
    'GuardrailPipeline',
    'Hook',
    'InjectionGuard',
    'InputSizeLimit',
    'PIIGuard',
    'ToolPolicy',
    'approval_id_for',
    'default_guardrails',
    'denial_message',
    'find_pii',
    'guardrails_from',
    'iban_ok',
    'load_guardrails',
    'luhn_ok',
    'redact_text',
    'score_injection',
)
