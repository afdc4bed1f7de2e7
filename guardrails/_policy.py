"""`ApprovalPolicy`: which tool calls wait for a human, who must decide, and what a rejection does.

A policy is a guardrail at the `tool_call` hook: the first matching `ApprovalRule` turns into a
require-approval decision, and the team's guardrail observer opens the approval and waits.

```python
ApprovalPolicy([
    ApprovalRule(tool='write_file', args={'path': '!src/*'}, reason='writes outside src/'),
    ApprovalRule(tool='run_command', role='admin', on_reject='stop_run'),
    ApprovalRule(data_classes=['restricted'], tool='*', expires_after_s=600, escalate_to='admin'),
])
```

Argument patterns are shell-style globs on the argument's text (`'!'` in front negates, `'re:'`
makes it a regular expression searched in the text); a pattern with a `/` compares the normalised
path, so `src/../setup.py` is outside `src/`. A rule with `min_cost_usd` matches when the policy's
cost estimate for the call (`estimate_cost`, or the fixed `tool_costs` table) is at least that.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._protocol import Decision, GuardContext, Hook

__all__ = ('ApprovalRule', 'ApprovalPolicy', 'DEFAULT_EXPIRY_S')

DEFAULT_EXPIRY_S = 24 * 3600.0
OnReject = Literal['tell_agent', 'stop_run']


def _arg_matches(pattern: str, value: Any) -> bool:
    negate = pattern.startswith('!')
    pat = pattern[1:] if negate else pattern
    text = value if isinstance(value, str) else str(value)
    if pat.startswith('re:'):
        hit = re.search(pat[3:], text) is not None
    else:
        if '/' in pat and isinstance(value, str):
            text = posixpath.normpath(text.strip().replace('\\', '/'))
        hit = fnmatch.fnmatchcase(text, pat)
    return hit != negate


@dataclass(frozen=True)
class ApprovalRule:
    """When a tool call needs approval, and how that approval behaves.

    Match fields (all must hold): `tool` and `specialist` (globs), `args` (argument name ->
    pattern), `data_classes` (the run's class is one of them; empty: any), `min_cost_usd`,
    `when(args, ctx) -> bool` (code only). Behaviour: `role` decides, `expires_after_s` (None:
    never), `on_reject` ('tell_agent' or 'stop_run'), `escalate_to` (a role that gets a fresh
    approval on expiry), `reason` (shown to the operator).
    """

    tool: str = '*'
    args: Mapping[str, str] = field(default_factory=dict)
    specialist: str = '*'
    data_classes: Sequence[str] = ()
    min_cost_usd: float | None = None
    when: Callable[[dict[str, Any], GuardContext], bool] | None = None
    role: str = 'operator'
    expires_after_s: float | None = DEFAULT_EXPIRY_S
    on_reject: OnReject = 'tell_agent'
    escalate_to: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        from ..exceptions import ConfigError

        if self.on_reject not in ('tell_agent', 'stop_run'):
            raise ConfigError(f"on_reject must be 'tell_agent' or 'stop_run', not {self.on_reject!r}", key='on_reject')
        if self.expires_after_s is not None and self.expires_after_s <= 0:
            raise ConfigError('expires_after_s must be positive (or None for no expiry)', key='expires_after_s')
        if not isinstance(self.role, str) or not self.role:
            raise ConfigError('role must be a non-empty role name', key='role')
        for name, pat in self.args.items():
            if not isinstance(pat, str):
                raise ConfigError(f'argument pattern for {name!r} must be a string', key=f'args.{name}')
            if pat.lstrip('!').startswith('re:'):
                try:
                    re.compile(pat.lstrip('!')[3:])
                except re.error as e:
                    raise ConfigError(f'bad regular expression for {name!r}: {e}', key=f'args.{name}') from None

    def matches(self, args: dict[str, Any], ctx: GuardContext, cost: float | None) -> bool:
        if not fnmatch.fnmatchcase(ctx.tool or '', self.tool) or not fnmatch.fnmatchcase(
            ctx.specialist, self.specialist
        ):
            return False
        if self.data_classes and ctx.data_class not in self.data_classes:
            return False
        for name, pat in self.args.items():
            if name not in args or not _arg_matches(pat, args[name]):
                return False
        if self.min_cost_usd is not None and (cost is None or cost < self.min_cost_usd):
            return False
        return self.when is None or bool(self.when(args, ctx))

    def describe(self, args: dict[str, Any], ctx: GuardContext, cost: float | None) -> str:
        if self.reason:
            return self.reason
        parts = [f'{ctx.tool}']
        if self.args:
            parts.append('with ' + ', '.join(f'{k}={str(args.get(k))[:80]!r} ({p})' for k, p in self.args.items()))
        if self.data_classes:
            parts.append(f'in a {ctx.data_class} run')
        if self.min_cost_usd is not None:
            parts.append(f'estimated ${cost:.4f} >= ${self.min_cost_usd:g}')
        return 'policy: ' + ' '.join(parts)


class ApprovalPolicy:
    """An ordered list of `ApprovalRule`s; the first that matches a tool call asks for approval."""

    name = 'approvals'
    hooks: frozenset[Hook] = frozenset({'tool_call'})

    def __init__(
        self,
        rules: Iterable[ApprovalRule],
        *,
        estimate_cost: Callable[[str, dict[str, Any], GuardContext], float | None] | None = None,
        tool_costs: Mapping[str, float] | None = None,
        name: str = 'approvals',
    ) -> None:
        self.rules = tuple(rules)
        self.estimate_cost = estimate_cost
        self.tool_costs = dict(tool_costs or {})
        self.name = name

    def cost_of(self, tool: str, args: dict[str, Any], ctx: GuardContext) -> float | None:
        if self.estimate_cost is not None:
            return self.estimate_cost(tool, args, ctx)
        for pattern, cost in self.tool_costs.items():
            if fnmatch.fnmatchcase(tool, pattern):
                return cost
        return None

    def rule_for(self, args: Any, ctx: GuardContext) -> tuple[ApprovalRule, str] | None:
        """The first matching rule and why it asks, or None."""
        args = args if isinstance(args, dict) else {'value': args}
        cost = self.cost_of(ctx.tool or '', args, ctx) if any(r.min_cost_usd is not None for r in self.rules) else None
        for rule in self.rules:
            if rule.matches(args, ctx, cost):
                return rule, rule.describe(args, ctx, cost)
        return None

    def check(self, payload: Any, ctx: GuardContext) -> Decision:
        found = self.rule_for(payload, ctx)
        if found is None:
            return Decision.allow()
        rule, why = found
        return Decision.require_approval(
            why,
            role=rule.role,
            expires_after_s=rule.expires_after_s,
            on_reject=rule.on_reject,
            escalate_to=rule.escalate_to,
        )
