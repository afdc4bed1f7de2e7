"""Waiting for an approval: durably inside a DBOS workflow, by polling outside one.

In a durable run the wait is one `DBOS.recv_async(topic=<approval id>)` per approval, with the
approval's expiry as the timeout. The decider sends a DBOS message after committing the decision;
the approvals table stays the source of truth and is re-read after every wake, so a decision made
while the process was dead is honoured on resume. A delegation running in its parent's workflow code
(`_engine.in_workflow()` is False there: its siblings share the workflow) polls the table instead,
as a run outside any workflow does; either way only the waiting branch pauses.

Why exactly one `recv` per approval, always (with timeout 0 when the table already holds the
decision): DBOS numbers a workflow's operations in order, and a recovered workflow must issue the
same operations in the same order. Branching only on final states (approved, rejected, expired)
keeps that order identical on every recovery. A small poller beside the `recv` re-sends the wake
message if the table holds a decision the workflow was never told about.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio
import sqlalchemy as sa

from .._log import get_logger
from ..state._schema import approvals, delegations, runs
from ..state._store import StateStore
from ..state._writer import flusher
from ._approvals import Approval, ApprovalQueue, approval_id_for, audit_decision, wake

__all__ = ('ApprovalRequest', 'ApprovalGate')

log = get_logger('proctor.approvals')
FOREVER_S = 10 * 365 * 24 * 3600.0


@dataclass(frozen=True)
class ApprovalRequest:
    """What a run asks an operator to decide."""

    key: str  # the tool call's stable key
    run_id: str
    agent_path: str
    tool: str
    args: Any
    data_class: str
    role: str
    reason: str
    expires_after_s: float | None
    escalate_to: str | None = None
    delegation_id: str | None = None
    kind: str = 'tool'
    attempt: int = 0


class ApprovalGate:
    """Opens approvals and waits for their decisions (returns the decided `Approval`)."""

    def __init__(
        self,
        store: StateStore,
        *,
        poll_interval: float = 0.05,
        max_poll_interval: float = 1.0,
        nudge_interval: float = 2.0,
    ) -> None:
        self.store = store
        self.queue = ApprovalQueue(store)
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.nudge_interval = nudge_interval

    async def decide(self, req: ApprovalRequest) -> Approval:
        from ..state._dbos import in_workflow

        durable = in_workflow()
        workflow_id = _workflow_id() if durable else None
        # The run shows 'waiting' before its approval appears, so nobody sees a pending approval on a
        # 'running' run; if the approval turns out decided already (recovery), the end puts it back.
        self._mark(req, waiting=True)
        # Opened synchronously (one small insert): no await between the tool call's start and its
        # `recv`, so concurrent tool calls of one workflow draw their DBOS operation ids in call order.
        a = self._open(
            req,
            req.role,
            req.expires_after_s,
            approval_id_for(req.key, kind=req.kind, attempt=req.attempt),
            req.reason,
            workflow_id,
        )
        escalated = False
        while True:
            if a.pending:
                _event('proctor.approval.requested', a)
            timed_out = await (self._recv(a) if durable else self._poll(a))
            a = self.queue.get(a.approval_id)
            if a.pending and a.expires_at is not None and (timed_out or a.expired_at()):
                a = self.queue.expire(a.approval_id, force=True)
            if a.status == 'expired':
                if req.escalate_to and not escalated:  # also taken again, idempotently, on recovery
                    a = self._escalate(req, a, approval_id_for(a.approval_id, kind=req.kind, attempt=1), workflow_id)
                    escalated = True
                    continue
                audit_decision(self.store, a)
            if not a.pending:
                break
        self._mark(req, waiting=False)
        _event('proctor.approval.decided', a)
        return a

    # ------------------------------------------------------------------ steps

    def _open(
        self,
        req: ApprovalRequest,
        role: str,
        expires: float | None,
        approval_id: str,
        reason: str,
        workflow_id: str | None,
    ) -> Approval:
        return self.queue.open(
            approval_id=approval_id,
            run_id=req.run_id,
            agent_path=req.agent_path,
            tool=req.tool,
            args=req.args,
            data_class=req.data_class,
            required_role=role,
            reason_required=reason,
            expires_after_s=expires,
            workflow_id=workflow_id,
            kind=req.kind,
        )

    def _escalate(self, req: ApprovalRequest, expired: Approval, esc_id: str, workflow_id: str | None) -> Approval:
        assert req.escalate_to is not None
        with self.store.engine.begin() as c:
            c.execute(
                approvals.update()
                .where(
                    approvals.c.approval_id == expired.approval_id,
                    approvals.c.status == 'expired',
                    approvals.c.reason == 'expired',
                )
                .values(reason=f'expired; escalated to {req.escalate_to!r} as {esc_id}')
            )
        audit_decision(self.store, self.queue.get(expired.approval_id))
        log.info('approval.escalated', approval_id=expired.approval_id, to=esc_id, role=req.escalate_to)
        return self._open(
            req,
            req.escalate_to,
            req.expires_after_s,
            esc_id,
            f'escalated from {expired.approval_id} (expired): {req.reason}',
            workflow_id,
        )

    async def _recv(self, a: Approval) -> bool:
        """Wait for the wake message; True if the wait timed out (the approval's expiry came)."""
        from dbos import DBOS

        if not a.pending:
            timeout = 0.0
        elif a.expires_at is None:
            timeout = FOREVER_S
        else:
            timeout = max(0.0, a.expires_at - time.time())
        async with anyio.create_task_group() as tg:
            if timeout > 0:
                tg.start_soon(self._nudge, a)
            msg = await DBOS.recv_async(topic=a.approval_id, timeout_seconds=timeout)
            tg.cancel_scope.cancel()
        return msg is None and a.pending

    async def _nudge(self, a: Approval) -> None:
        """Re-send the wake message if the table holds a decision the waiting workflow missed."""
        while True:
            await anyio.sleep(self.nudge_interval)
            current = await anyio.to_thread.run_sync(self.queue.get, a.approval_id)
            if not current.pending:
                await anyio.to_thread.run_sync(wake, self.store, current)
                return

    async def _poll(self, a: Approval) -> bool:
        delay = self.poll_interval
        while True:
            current = await anyio.to_thread.run_sync(self.queue.get, a.approval_id)
            if not current.pending:
                return False
            if current.expired_at():
                return True
            await anyio.sleep(delay)
            delay = min(delay * 1.5, self.max_poll_interval)

    def _mark(self, req: ApprovalRequest, *, waiting: bool) -> None:
        """Run (and delegation) status 'waiting' while any of the run's approvals is pending, else back to 'running'."""
        if waiting:
            # Everything the run did up to the wait (its spans, recordings, ledger rows) is stored
            # before it waits: a waiting run reads the same in every view, however long it waits.
            try:
                flusher.flush_store(self.store)
            except Exception as e:  # a failed write is retried with the next flush; the wait goes on
                log.warning('approval.flush_failed', error=f'{type(e).__name__}: {e}')
        r, d = runs.c, delegations.c
        with self.store.engine.begin() as c:
            if waiting:
                c.execute(
                    runs.update()
                    .where(r.run_id == req.run_id, r.status.in_(('running', 'waiting')))
                    .values(status='waiting')
                )
                if req.delegation_id:
                    c.execute(
                        delegations.update()
                        .where(d.delegation_id == req.delegation_id, d.status == 'running')
                        .values(status='waiting')
                    )
                return
            pending = sa.select(approvals.c.approval_id).where(
                approvals.c.run_id == req.run_id, approvals.c.status == 'pending'
            )
            c.execute(
                runs.update()
                .where(r.run_id == req.run_id, r.status == 'waiting', ~sa.exists(pending))
                .values(status='running')
            )
            if req.delegation_id:
                mine = pending.where(approvals.c.agent_path == req.agent_path)
                c.execute(
                    delegations.update()
                    .where(d.delegation_id == req.delegation_id, d.status == 'waiting', ~sa.exists(mine))
                    .values(status='running')
                )


def _workflow_id() -> str | None:
    from dbos import DBOS

    return DBOS.workflow_id


def _event(name: str, a: Approval) -> None:
    try:
        from ..tracing._events import add_event
    except ImportError:  # pragma: no cover
        return
    add_event(
        name,
        {
            'approval_id': a.approval_id,
            'tool': a.tool,
            'kind': a.kind,
            'status': a.status,
            'role': a.required_role,
            'decider': a.decider,
            'reason': a.reason,
        },
    )
