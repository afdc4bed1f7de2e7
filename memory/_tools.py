"""Agent tools over shared memory: `remember(text, tags)` and `recall(query, k)`, as pydantic-ai tool
functions over `RunContext[RunDeps]`, bundled in a `FunctionToolset` a `Specialist` takes in `toolsets=`.

The namespace is the run's team and project; an agent recalls only entries whose data class is at
most the run's and (with an `allowed_classes` hook, e.g. the model registry) approved for its model.
Writes pass the team's `memory_write` guardrails and, in a durable run, are recorded steps.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import structlog
from pydantic_ai import ModelRetry, RunContext
from pydantic_ai.messages import ModelResponse
from pydantic_ai.toolsets import FunctionToolset

from ..core._deps import RunDeps
from ..exceptions import GuardrailTripped, MemoryStoreError, UserError
from ..guardrails._protocol import GuardContext
from ..state._scope import RunScope, current_scope
from ..tools._journal import side_effect_step
from ._protocol import SharedMemory
from ._types import MemoryEntry, Provenance, allowed_classes, check_text, namespace_for

__all__ = ('memory_tools', 'format_recollections', 'provenance_of', 'recall_for', 'approval_hook', 'team_guarded_text')

SNIPPET_CHARS = 600
log = structlog.get_logger('proctor.memory')


def model_version_of(ctx: RunContext[RunDeps]) -> str:
    """The model name the provider reported on this agent's latest response (its exact version)."""
    for msg in reversed(ctx.messages):
        if isinstance(msg, ModelResponse) and msg.model_name:
            return msg.model_name
    return getattr(ctx.model, 'model_name', '') or ''


def provenance_of(deps: RunDeps, *, source: str, model_version: str = '', model_id: str | None = None) -> Provenance:
    return Provenance(
        data_class=deps.data_class,
        run_id=deps.run_id,
        agent_path=deps.agent_path,
        model_id=model_id or deps.model_id or '',
        model_version=model_version,
        source=source,
    )


def _scope_of(deps: RunDeps) -> RunScope | None:
    scope = current_scope.get()
    # None: an agent outside a proctor Team, no team guardrails to apply
    return scope if scope is not None and scope.team == deps.team else None


async def team_guarded_text(deps: RunDeps, text: str, *, tool: str) -> str:
    """`text` after the team's `memory_write` guardrails (redactions applied; a block raises
    `GuardrailTripped`; guard decisions are recorded in the team's state store)."""
    team = _scope_of(deps)
    if team is None or not team.guardrails.has('memory_write'):
        return text
    ctx = GuardContext(
        hook='memory_write',
        run_id=deps.run_id,
        agent_path=deps.agent_path,
        specialist=deps.specialist,
        data_class=deps.data_class,
        tool=tool,
    )
    store = team.store if team.record else None
    outcome = await anyio.to_thread.run_sync(lambda: team.guardrails.apply('memory_write', text, ctx, store=store))
    if outcome.approval is not None:
        raise GuardrailTripped(
            guard='memory_write',
            hook='memory_write',
            run_id=deps.run_id,
            reason=f'needs approval ({outcome.approval.reason}); memory writes cannot wait',
        )
    return outcome.payload


def approval_hook(memory: SharedMemory, deps: RunDeps, hook: Any = None) -> Any:
    """Which models may see which data classes: `hook`, else the memory's `allowed_classes`, else the
    model registry of the team's router (a `ModelRouter`), else none (the run's class is the ceiling)."""
    if hook is not None:
        return hook
    own = getattr(memory, 'allowed_classes', None)
    if own is not None:
        return own
    team = _scope_of(deps)
    return team.registry if team is not None else None


async def recall_for(
    memory: SharedMemory, deps: RunDeps, query: str, *, k: int = 5, hook: Any = None, min_score: float | None = None
) -> list[MemoryEntry]:
    """What the agent with `deps` may recall for `query`, in its team's project namespace."""
    classes = allowed_classes(deps.data_class, deps.model_id, approval_hook(memory, deps, hook))
    return await memory.recall(
        query, namespace=namespace_for(deps.team, deps.project), k=k, data_classes=classes, min_score=min_score
    )


def format_recollections(entries: list[MemoryEntry], *, empty: str = 'No relevant memories.') -> str:
    """One block per entry: the snippet, then its citation (entry id + provenance) and similarity."""
    if not entries:
        return empty
    blocks = []
    for e in entries:
        text = e.text if len(e.text) <= SNIPPET_CHARS else e.text[: SNIPPET_CHARS - 1] + '…'
        score = '' if e.score is None else f'; similarity {e.score:.2f}'
        blocks.append(f'{e.citation()}{score}\n{text}')
    return '\n\n'.join(blocks)


def memory_tools(memory: SharedMemory, *, allowed_classes: Any = None, max_k: int = 10) -> FunctionToolset[RunDeps]:
    """A toolset with `remember` and `recall` over `memory`, for `Specialist(toolsets=[...])`."""

    async def remember(
        ctx: RunContext[RunDeps], text: str, tags: list[str] | None = None, source: str | None = None
    ) -> str:
        """Store a fact, decision or finding in the team's shared memory so later tasks can recall it.

        Args:
            text: What to remember, self-contained (it is read later without this conversation).
            tags: Optional short labels, such as "decision" or "api".
            source: Where it came from, e.g. a URL or "file:src/app.py" (default: this tool).
        """
        deps = ctx.deps
        try:
            stored = check_text(await team_guarded_text(deps, check_text(text), tool='remember'))
        except UserError as e:
            raise ModelRetry(str(e)) from e
        prov = provenance_of(deps, source=source or 'tool:remember', model_version=model_version_of(ctx))

        async def act() -> str:
            try:
                entries = await memory.add(
                    stored, namespace=namespace_for(deps.team, deps.project), provenance=prov, tags=tuple(tags or ())
                )
            except MemoryStoreError as e:  # the run goes on without memory; the model is told why
                log.warning('memory.unavailable', run_id=deps.run_id, error=str(e))
                return f'Not remembered: {e}'
            ids = list(dict.fromkeys(f'[mem:{e.id}]' for e in entries))
            if all(e.merged for e in entries):
                return f'Already remembered (merged into {", ".join(ids)}).'
            return f'Remembered as {", ".join(ids)}.'

        return await side_effect_step('proctor.memory.remember', act)

    async def recall(ctx: RunContext[RunDeps], query: str, k: int = 5) -> str:
        """Search the team's shared memory; returns matching snippets, each with its citation
        ([mem:id], the run, agent and model that wrote it, when, its data class and source).

        Args:
            query: What to look for, in plain words.
            k: How many snippets at most.
        """
        if not isinstance(query, str) or not query.strip():
            raise ModelRetry('recall needs a non-empty query')
        k = max(1, min(int(k), max_k))
        try:
            entries = await recall_for(memory, ctx.deps, query, k=k, hook=allowed_classes)
        except MemoryStoreError as e:
            log.warning('memory.unavailable', run_id=ctx.deps.run_id, error=str(e))
            return f'Shared memory is unavailable: {e}'
        return format_recollections(entries)

    return FunctionToolset([remember, recall], id='proctor.memory')
