"""`ToolPolicy`: which tools each specialist may call (allow and deny lists of name patterns).

`allow={'research': ['list_files', 'read_file', 'search_*']}` limits research to those tools;
`deny={'*': ['run_command']}` forbids `run_command` to everyone. Patterns are shell-style
(`fnmatch`); `'*'` as the specialist key applies to all. Deny wins over allow; a specialist with no
allow entry (and no `'*'` entry) may call any tool not denied. A refused call trips the guardrail
(`GuardrailTripped` naming the tool and the specialist).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from ._protocol import Decision, GuardContext, Hook

__all__ = ('ToolPolicy',)


def _norm(table: Mapping[str, Sequence[str]] | None, key: str) -> dict[str, tuple[str, ...]]:
    from ..exceptions import ConfigError

    out: dict[str, tuple[str, ...]] = {}
    for spec, pats in (table or {}).items():
        if isinstance(pats, str) or not all(isinstance(p, str) and p for p in pats):
            raise ConfigError(
                f'{spec!r} must map to a list of tool name patterns', key=f'guardrails.tools.{key}.{spec}'
            )
        out[spec] = tuple(pats)
    return out


class ToolPolicy:
    """Per-specialist tool allow and deny lists, checked before every tool call."""

    hooks: frozenset[Hook] = frozenset({'tool_call'})

    def __init__(
        self,
        *,
        allow: Mapping[str, Sequence[str]] | None = None,
        deny: Mapping[str, Sequence[str]] | None = None,
        name: str = 'tool_policy',
    ) -> None:
        self.allow = _norm(allow, 'allow')
        self.deny = _norm(deny, 'deny')
        self.name = name

    @staticmethod
    def _match(patterns: Sequence[str], tool: str) -> str | None:
        return next((p for p in patterns if fnmatch.fnmatchcase(tool, p)), None)

    def permits(self, specialist: str, tool: str) -> tuple[bool, str]:
        """Whether `specialist` may call `tool`, and why not."""
        for key in (specialist, '*'):
            hit = self._match(self.deny.get(key, ()), tool)
            if hit is not None:
                return False, f'tool {tool!r} is denied to {specialist!r} (deny list {key!r}: {hit!r})'
        lists = [self.allow[k] for k in (specialist, '*') if k in self.allow]
        if lists and not any(self._match(pats, tool) for pats in lists):
            allowed = sorted({p for pats in lists for p in pats})
            return False, f'tool {tool!r} is not on the allow list of {specialist!r} ({", ".join(allowed)})'
        return True, ''

    def check(self, payload: Any, ctx: GuardContext) -> Decision:
        ok, why = self.permits(ctx.specialist, ctx.tool or '')
        return Decision.allow() if ok else Decision.block(why)
