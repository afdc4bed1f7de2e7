"""`MemoryBriefing`: a run observer that hands relevant shared memories to each delegated subtask,
and (optionally) remembers what each specialist returned.

Attach it with `Team(..., observers=[memory.briefing()])`; no team code changes. Before a
`delegate_to_<specialist>` call runs, it recalls the entries closest to the subtask (same namespace
and data-class rules as the `recall` tool) and appends them, with citations, to the subtask text, so
the specialist sees them and the input guardrails check them like the rest of the subtask.
"""

from __future__ import annotations

from typing import Any

import structlog

from ..core._events import RunEvent, RunObserver, ToolCall
from ..exceptions import MemoryStoreError, ProctorError
from ._protocol import SharedMemory
from ._tools import format_recollections, provenance_of, recall_for, team_guarded_text
from ._types import namespace_for

__all__ = ('MemoryBriefing', 'BRIEFING_HEADER')

log = structlog.get_logger('proctor.memory')
BRIEFING_HEADER = 'Relevant shared memories (cite them as [mem:id]):'
_PREFIX = 'delegate_to_'


class MemoryBriefing(RunObserver):
    """Adds up to `k` memories with similarity at least `min_score` to every delegated subtask
    (none when the store is unreachable: the outage is logged and the run goes on).

    With `remember_results=True` each delegation's result is stored too (provenance: the
    specialist's agent path and model), so later runs can recall it. Recording is best-effort: a
    failure is logged and the run goes on; a memory-write guard that blocks skips the write.
    """

    def __init__(
        self,
        memory: SharedMemory,
        *,
        k: int = 3,
        min_score: float = 0.3,
        allowed_classes: Any = None,
        remember_results: bool = False,
    ) -> None:
        self.memory = memory
        self.k = k
        self.min_score = min_score
        self.allowed_classes = allowed_classes
        self.remember_results = remember_results
        self._finished: dict[tuple[str, str], list[RunEvent]] = {}

    async def before_tool_call(self, call: ToolCall) -> dict[str, Any]:
        subtask = call.args.get('subtask')
        if not call.tool.startswith(_PREFIX) or not isinstance(subtask, str) or not subtask.strip():
            return call.args
        if BRIEFING_HEADER in subtask:
            return call.args  # already briefed (a re-run hook on recovery sees the recorded args)
        try:
            entries = await recall_for(
                self.memory, call.deps, subtask, k=self.k, hook=self.allowed_classes, min_score=self.min_score
            )
        except MemoryStoreError as e:  # a memory outage must not stop the run: the subtask goes unbriefed
            log.warning('memory.unavailable', run_id=call.deps.run_id, error=str(e))
            return call.args
        if not entries:
            return call.args
        log.debug('memory.briefing', run_id=call.deps.run_id, tool=call.tool, ids=[e.id for e in entries])
        return {**call.args, 'subtask': f'{subtask}\n\n{BRIEFING_HEADER}\n{format_recollections(entries)}'}

    def on_event(self, event: RunEvent) -> None:
        if self.remember_results and event.kind == 'delegation_finished':
            self._finished.setdefault((event.run_id, event.agent_path), []).append(event)

    async def after_tool_call(self, call: ToolCall, result: Any) -> Any:
        if (
            not self.remember_results
            or not call.tool.startswith(_PREFIX)
            or not isinstance(result, str)
            or not result.strip()
        ):
            return result
        specialist = call.tool[len(_PREFIX) :]
        deps = call.deps
        path = f'{deps.agent_path}>{specialist}'
        events = self._finished.get((deps.run_id, path), [])
        event = next((e for e in events if e.output == result), events[0] if events else None)
        if event is not None:
            events.remove(event)
        child = deps.child(
            specialist,
            delegation_id=deps.delegation_id_of(specialist, call.tool_call_id),
            model_id=event.model_id if event else None,
        )
        try:
            text = await team_guarded_text(child, result, tool=call.tool)
            await self.memory.add(
                text,
                namespace=namespace_for(deps.team, deps.project),
                provenance=provenance_of(child, source=f'tool:{call.tool}'),
                tags=('delegation', specialist),
            )
        except ProctorError as e:
            log.warning('memory.remember_result_failed', run_id=deps.run_id, agent_path=path, error=str(e))
        return result
