"""Running a team's guardrails at a hook point, in order, and recording every decision that is not
a plain allow."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import GuardrailTripped
from ._protocol import Decision, GuardContext, Guardrail, Hook

if TYPE_CHECKING:
    from ..state._store import StateStore

__all__ = ('GuardrailPipeline', 'GuardOutcome')


class GuardOutcome:
    """The result of one hook: the payload to go on with, and any approval a guard asked for."""

    __slots__ = ('payload', 'approval', 'decisions')

    def __init__(self, payload: Any, approval: Decision | None, decisions: list[tuple[str, Decision]]) -> None:
        self.payload = payload
        self.approval = approval
        self.decisions = decisions


class GuardrailPipeline:
    def __init__(self, guards: Sequence[Guardrail] = ()) -> None:
        self.guards = list(guards)
        self._by_hook: dict[str, list[Guardrail]] = {}
        for g in self.guards:
            for h in g.hooks:
                self._by_hook.setdefault(h, []).append(g)

    def has(self, hook: Hook) -> bool:
        return hook in self._by_hook

    def apply(
        self, hook: Hook, payload: Any, ctx: GuardContext, *, store: StateStore | None = None, key: str | None = None
    ) -> GuardOutcome:
        """Run the guards for `hook`: redactions chain, a block raises `GuardrailTripped` (after the
        decision is recorded), an approval request is returned to the caller.

        `key` (a tool call's stable key) makes the recording idempotent: a recovered run that runs
        the same hook again records nothing new.
        """
        guards = self._by_hook.get(hook)
        if not guards:
            return GuardOutcome(payload, None, [])
        decisions: list[tuple[str, Decision]] = []
        approval: Decision | None = None
        for g in guards:
            d = g.check(payload, ctx)
            if d.action == 'allow':
                continue
            decisions.append((g.name, d))
            if d.action == 'redact':
                payload = d.payload
            elif d.action == 'approve' and approval is None:
                approval = d
            elif d.action == 'block':
                self._record(store, ctx, decisions, key)
                raise GuardrailTripped(
                    guard=g.name, hook=hook, reason=d.reason, run_id=ctx.run_id, tell_agent=d.tell_agent
                )
        self._record(store, ctx, decisions, key)
        return GuardOutcome(payload, approval, decisions)

    @staticmethod
    def _record(
        store: StateStore | None, ctx: GuardContext, decisions: list[tuple[str, Decision]], key: str | None
    ) -> None:
        if store is None or not decisions:
            return
        from ..state._schema import guard_events  # SQLAlchemy loads with the store, not with the pipeline

        now = time.time()
        rows = [
            dict(
                run_id=ctx.run_id,
                agent_path=ctx.agent_path,
                hook=ctx.hook,
                guard=name,
                decision=d.action,
                reason=d.reason,
                created_at=now,
                idem_key=None if key is None else f'{key}|{ctx.hook}|{name}|{i}',
            )
            for i, (name, d) in enumerate(decisions)
        ]
        eng = store.engine
        with eng.begin() as c:
            if key is None:
                c.execute(guard_events.insert(), rows)
                return
            if c.dialect.name == 'postgresql':
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            c.execute(insert(guard_events).on_conflict_do_nothing(index_elements=['idem_key']), rows)
