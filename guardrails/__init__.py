"""Guardrails at five hook points (input, output, tool call, tool output, memory write), the built-in
guards, and approval checkpoints (`ApprovalPolicy`, `Approval`, `ApprovalQueue`)."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._approvals import Approval, ApprovalQueue, approval_id_for
    from ._config import guardrails_from, load_guardrails
    from ._data_class import DataClassGuard
    from ._defaults import default_guardrails
    from ._gate import ApprovalGate, ApprovalRequest
    from ._injection import QUARANTINE_MARK, InjectionGuard, score_injection
    from ._limits import InputSizeLimit
    from ._observer import GuardrailObserver, denial_message
    from ._outbound import READ_ONLY_TOOLS, OutboundGuard
    from ._pii import PII_KINDS, PIIGuard, find_pii, iban_ok, luhn_ok, redact_text
    from ._pipeline import GuardOutcome, GuardrailPipeline
    from ._policy import ApprovalPolicy, ApprovalRule
    from ._protocol import HOOKS, Decision, GuardContext, Guardrail, Hook
    from ._tools import ToolPolicy

__all__ = (
    'HOOKS',
    'PII_KINDS',
    'QUARANTINE_MARK',
    'READ_ONLY_TOOLS',
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
    'OutboundGuard',
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

#: Public name -> the submodule that defines it; imported on first access (PEP 562) so that
#: `import proctor.guardrails` stays cheap and each name pulls in only what it needs.
_LAZY = {
    'Approval': '._approvals',
    'ApprovalQueue': '._approvals',
    'approval_id_for': '._approvals',
    'guardrails_from': '._config',
    'load_guardrails': '._config',
    'DataClassGuard': '._data_class',
    'default_guardrails': '._defaults',
    'ApprovalGate': '._gate',
    'ApprovalRequest': '._gate',
    'QUARANTINE_MARK': '._injection',
    'InjectionGuard': '._injection',
    'score_injection': '._injection',
    'InputSizeLimit': '._limits',
    'GuardrailObserver': '._observer',
    'denial_message': '._observer',
    'OutboundGuard': '._outbound',
    'READ_ONLY_TOOLS': '._outbound',
    'PII_KINDS': '._pii',
    'PIIGuard': '._pii',
    'find_pii': '._pii',
    'iban_ok': '._pii',
    'luhn_ok': '._pii',
    'redact_text': '._pii',
    'GuardOutcome': '._pipeline',
    'GuardrailPipeline': '._pipeline',
    'ApprovalPolicy': '._policy',
    'ApprovalRule': '._policy',
    'HOOKS': '._protocol',
    'Decision': '._protocol',
    'GuardContext': '._protocol',
    'Guardrail': '._protocol',
    'Hook': '._protocol',
    'ToolPolicy': '._tools',
}


from .._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
