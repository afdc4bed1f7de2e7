"""`InputSizeLimit`: refuses oversized tasks, subtasks, tool arguments and memory writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._protocol import Decision, GuardContext, Hook
from ._text import text_of

__all__ = ('InputSizeLimit',)

_DEFAULTS: dict[str, int] = {'input': 100_000, 'tool_call': 200_000, 'memory_write': 50_000}


class InputSizeLimit:
    """Blocks a payload longer than its hook's limit, in characters (tool arguments count as JSON).

    `limits` maps hooks to maxima (defaults: input 100k, tool_call 200k, memory_write 50k); a hook
    left out is not checked. `max_chars` sets one limit for `input` (the task and every subtask).
    """

    def __init__(
        self, max_chars: int | None = None, *, limits: Mapping[str, int] | None = None, name: str = 'input_size'
    ) -> None:
        from ..exceptions import ConfigError

        table = dict(_DEFAULTS if limits is None else limits)
        if max_chars is not None:
            table['input'] = max_chars
        for hook, n in table.items():
            if hook not in ('input', 'output', 'tool_call', 'tool_output', 'memory_write'):
                raise ConfigError(f'unknown hook {hook!r}', key=f'guardrails.input_size.{hook}')
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ConfigError(
                    f'limit must be a positive whole number of characters, not {n!r}',
                    key=f'guardrails.input_size.{hook}',
                )
        self.limits = table
        self.hooks: frozenset[Hook] = frozenset(table)  # type: ignore[arg-type]
        self.name = name

    def check(self, payload: Any, ctx: GuardContext) -> Decision:
        limit = self.limits.get(ctx.hook)
        if limit is None:
            return Decision.allow()
        size = len(text_of(payload))
        if size <= limit:
            return Decision.allow()
        what = f'arguments of {ctx.tool}' if ctx.hook == 'tool_call' else ctx.hook.replace('_', ' ')
        return Decision.block(f'{what} is {size} characters, over the limit of {limit}')
