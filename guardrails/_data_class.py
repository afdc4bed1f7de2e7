"""`DataClassGuard`: a run's data class flows to every tool call and memory write; tools and the
memory store are cleared up to a class, and data above it never reaches them.

Every agent of a run gets the run's class in `RunDeps.data_class` (subtasks inherit it unchanged),
and every guard sees it in `GuardContext.data_class`. This guard blocks a tool call when the run's
class is above the tool's clearance (`tools={'web_search': 'public'}`: a `confidential` run cannot
send text to a web search) and a memory write above `memory`'s clearance.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from ._protocol import Decision, GuardContext, Hook

__all__ = ('DataClassGuard',)


def _classes() -> tuple[str, ...]:
    from ..core._data_classes import DATA_CLASSES

    return DATA_CLASSES


class DataClassGuard:
    """Blocks tools (by name pattern) and memory writes that are not cleared for the run's data class.

    `tools` maps tool name patterns to the highest class each may see; `default` is the clearance of
    tools not listed (None: any class); `memory` is the shared memory's clearance (None: any).
    """

    def __init__(
        self,
        *,
        tools: Mapping[str, str] | None = None,
        default: str | None = None,
        memory: str | None = None,
        name: str = 'data_class',
    ) -> None:
        from ..exceptions import ConfigError

        known = _classes()
        for key, cls in [
            *((f'tools.{k}', v) for k, v in (tools or {}).items()),
            ('default', default),
            ('memory', memory),
        ]:
            if cls is not None and cls not in known:
                raise ConfigError(
                    f'unknown data class {cls!r} (one of {", ".join(known)})', key=f'guardrails.data_class.{key}'
                )
        self.tools = dict(tools or {})
        self.default = default
        self.memory = memory
        self.name = name
        hooks: set[Hook] = {'tool_call'}
        if memory is not None:
            hooks.add('memory_write')
        self.hooks: frozenset[Hook] = frozenset(hooks)

    def clearance(self, tool: str) -> str | None:
        """The highest data class `tool` is cleared for (None: any)."""
        for pattern, cls in self.tools.items():
            if fnmatch.fnmatchcase(tool, pattern):
                return cls
        return self.default

    def check(self, payload: Any, ctx: GuardContext) -> Decision:
        known = _classes()
        if ctx.hook == 'memory_write':
            limit, what = self.memory, 'shared memory'
        else:
            limit, what = self.clearance(ctx.tool or ''), f'tool {ctx.tool!r}'
        if limit is None or ctx.data_class not in known:
            return Decision.allow()
        if known.index(ctx.data_class) <= known.index(limit):
            return Decision.allow()
        return Decision.block(f'{what} is cleared up to {limit!r}; this run is {ctx.data_class!r}')
