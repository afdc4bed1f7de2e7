"""`OutboundGuard`: secrets and personal data in the arguments of tool calls that act or send.

A tool call's arguments leave the run: a file written, a command run, a memory stored, a request an
MCP server makes. The guard scans the arguments of every tool call except the known read-only ones
(`READ_ONLY_TOOLS`: reading and listing the workspace, recalling memory, delegating, whose subtask
the `input` guards see) for secrets (API keys, tokens, private keys, JWTs) and personal data
(emails, phone numbers, card numbers, IBANs, national ids). It does not redact (a file the coding
agent writes must not be silently rewritten); a hit, per `action`:

- `'block'` (default): the call does not run and the model is told why, so it can go on without
  the secret (`ToolCallDenied` as the tool's result);
- `'approve'`: the call waits for an operator's approval (`role`), rejected: the model is told;
- `'stop_run'`: the run stops (`GuardrailTripped`).

Every hit is recorded as a guard decision of the run (kinds and counts, never the values).
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from ._pii import PII_KINDS, find_pii
from ._protocol import Decision, GuardContext, Hook
from ._text import strings_of

__all__ = ('OutboundGuard', 'READ_ONLY_TOOLS', 'OUTBOUND_KINDS')

#: Tools whose arguments stay in the run (name patterns).
READ_ONLY_TOOLS: tuple[str, ...] = ('list_files', 'read_file', 'search_files', 'recall', 'delegate_to_*')
#: What the guard looks for by default: no `high_entropy` (hashes and ids in code are not secrets).
OUTBOUND_KINDS: tuple[str, ...] = ('secret', 'email', 'iban', 'card', 'national_id', 'phone')


class OutboundGuard:
    """Blocks (or sends to approval) tool calls that would carry secrets or personal data out."""

    hooks: frozenset[Hook] = frozenset({'tool_call'})

    def __init__(
        self,
        *,
        kinds: Iterable[str] = OUTBOUND_KINDS,
        action: Literal['block', 'approve', 'stop_run'] = 'block',
        role: str = 'operator',
        read_only: Iterable[str] = READ_ONLY_TOOLS,
        allow: Iterable[str] = (),
        name: str = 'outbound',
    ) -> None:
        from ..exceptions import ConfigError

        self.kinds = tuple(kinds)
        bad = set(self.kinds) - set(PII_KINDS)
        if bad:
            raise ConfigError(
                f'unknown kinds {sorted(bad)} (known: {", ".join(PII_KINDS)})', key='guardrails.outbound.kinds'
            )
        if action not in ('block', 'approve', 'stop_run'):
            raise ConfigError(
                f"action must be 'block', 'approve' or 'stop_run', not {action!r}", key='guardrails.outbound.action'
            )
        self.action = action
        self.role = role
        self.read_only = tuple(read_only)
        self.allow = frozenset(allow)
        self.name = name

    def scans(self, tool: str | None) -> bool:
        """Whether calls of `tool` are scanned (it is not one of the read-only tools)."""
        return bool(tool) and not any(fnmatch.fnmatchcase(tool or '', p) for p in self.read_only)

    def check(self, payload: Any, ctx: GuardContext) -> Decision:
        if not self.scans(ctx.tool):
            return Decision.allow()
        counts: Counter[str] = Counter()
        for s in strings_of(payload):
            counts.update(f.kind for f in find_pii(s, self.kinds) if f.text not in self.allow)
        if not counts:
            return Decision.allow()
        what = ', '.join(f'{n} {k}' for k, n in sorted(counts.items()))
        reason = f'the arguments of {ctx.tool} hold {what}'
        if self.action == 'approve':
            return Decision.require_approval(f'{reason}: approve to let them out', role=self.role)
        if self.action == 'stop_run':
            return Decision.block(reason)
        return Decision.block(
            f'{reason}; secrets and personal data may not leave the run through tool calls. '
            'Call it again without them (a placeholder or an environment variable name instead).',
            tell_agent=True,
        )
