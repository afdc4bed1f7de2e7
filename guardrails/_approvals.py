"""Approvals as durable records (`proctor_approvals`) and `ApprovalQueue`, the one way to decide them.

An approval is created by the run that needs it (its id derives from the tool call's stable key,
so a recovered run finds the same approval instead of opening another) and decided by an operator
from any process (`proctor approvals approve ID`, the console). A decision is one conditional
UPDATE: only a pending, unexpired approval can be decided, only by someone with the required role;
otherwise nothing changes and a clear error says why. After the commit the queue wakes the waiting
workflow (a DBOS message; the table stays the source of truth) and appends the decision to the
audit log.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import sqlalchemy as sa

from .._log import get_logger
from ..exceptions import ApprovalDecisionError, UnknownApprovalError, UserError
from ..state._schema import approvals
from ..state._store import StateStore

__all__ = ('Approval', 'ApprovalQueue', 'approval_id_for', 'SYSTEM_DECIDER')

log = get_logger('proctor.approvals')

Status = Literal['pending', 'approved', 'rejected', 'expired']
SYSTEM_DECIDER = 'proctor'  # who "decides" an expiry
MAX_REASON = 2000


def approval_id_for(key: str, *, kind: str = 'tool', attempt: int = 0) -> str:
    """The approval id of a tool call (`key` is the call's stable key): the same on every recovery."""
    return 'apr-' + hashlib.sha256(f'{kind}|{attempt}|{key}'.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Approval:
    """One approval: what was asked, by which run and agent, and what was decided, by whom, when and why."""

    approval_id: str
    run_id: str
    workflow_id: str | None
    kind: str  # 'tool' | 'in_doubt'
    agent_path: str
    tool: str
    args: Any
    data_class: str
    required_role: str
    reason_required: str | None
    created_at: float
    expires_at: float | None
    status: Status
    decider: str | None = None
    decider_role: str | None = None
    decided_at: float | None = None
    reason: str | None = None

    @property
    def pending(self) -> bool:
        return self.status == 'pending'

    def expired_at(self, now: float | None = None) -> bool:
        """True if still pending past its expiry (not yet swept by the waiting run)."""
        return self.pending and self.expires_at is not None and self.expires_at <= (time.time() if now is None else now)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _row(row: Any) -> Approval:
    d = dict(row)
    try:
        d['args'] = json.loads(d['args'])
    except (TypeError, ValueError):
        pass
    return Approval(**d)


def _insert_ignore(conn: sa.Connection, values: dict[str, Any]) -> Any:
    if conn.dialect.name == 'postgresql':
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(approvals).values(**values).on_conflict_do_nothing(index_elements=['approval_id'])


class ApprovalQueue:
    """Approvals of one state store: create (runs), list/get (operators), approve/reject (operators).

    Synchronous (blocking SQL); call through a thread from async code.
    """

    def __init__(self, store: StateStore, *, audit: bool = True) -> None:
        self.store = store
        self.audit = audit

    # ------------------------------------------------------------------ reading

    def get(self, approval_id: str) -> Approval:
        """The approval with this id (or a unique prefix of it); `UnknownApprovalError` otherwise."""
        if not isinstance(approval_id, str) or not approval_id.strip():
            raise UnknownApprovalError(str(approval_id))
        approval_id = approval_id.strip()
        with self.store.engine.connect() as c:
            row = c.execute(sa.select(approvals).where(approvals.c.approval_id == approval_id)).mappings().first()
            if row is None and len(approval_id) >= 6:
                rows = (
                    c.execute(
                        sa.select(approvals)
                        .where(approvals.c.approval_id.startswith(approval_id, autoescape=True))
                        .limit(2)
                    )
                    .mappings()
                    .all()
                )
                row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise UnknownApprovalError(approval_id)
        return _row(row)

    def list(self, *, run_id: str | None = None, status: str | None = None, limit: int = 200) -> list[Approval]:
        """Approvals newest first; `run_id` may be a unique prefix; `status` one of pending/approved/rejected/expired."""
        q = sa.select(approvals).order_by(approvals.c.created_at.desc()).limit(limit)
        if run_id:
            q = q.where(approvals.c.run_id.startswith(run_id, autoescape=True))
        if status:
            if status not in ('pending', 'approved', 'rejected', 'expired'):
                raise UserError(f'unknown approval status {status!r} (pending, approved, rejected or expired)')
            q = q.where(approvals.c.status == status)
        with self.store.engine.connect() as c:
            return [_row(r) for r in c.execute(q).mappings()]

    def pending_count(self, run_id: str) -> int:
        with self.store.engine.connect() as c:
            q = sa.select(sa.func.count()).select_from(approvals)
            return int(c.execute(q.where(approvals.c.run_id == run_id, approvals.c.status == 'pending')).scalar_one())

    # ------------------------------------------------------------------ runs

    def open(
        self,
        *,
        approval_id: str,
        run_id: str,
        agent_path: str,
        tool: str,
        args: Any,
        data_class: str,
        required_role: str,
        reason_required: str | None,
        expires_after_s: float | None,
        workflow_id: str | None = None,
        kind: str = 'tool',
    ) -> Approval:
        """Create the approval if it does not exist yet (a recovered run keeps the original, with its
        original expiry) and return it as recorded."""
        now = time.time()
        values = dict(
            approval_id=approval_id,
            run_id=run_id,
            workflow_id=workflow_id,
            kind=kind,
            agent_path=agent_path,
            tool=tool,
            args=json.dumps(args, default=str, sort_keys=True),
            data_class=data_class,
            required_role=required_role,
            reason_required=reason_required,
            created_at=now,
            expires_at=None if expires_after_s is None else now + expires_after_s,
            status='pending',
        )
        with self.store.engine.begin() as c:
            c.execute(_insert_ignore(c, values))
            row = c.execute(sa.select(approvals).where(approvals.c.approval_id == approval_id)).mappings().one()
        return _row(row)

    def expire(self, approval_id: str, *, force: bool = False) -> Approval:
        """Mark a pending approval past its expiry as expired (a no-op otherwise); returns it as recorded.

        `force`: the waiting run's timer ran out, so expire even if the clock reads a hair early.
        """
        now = time.time()
        a = approvals.c
        cond = [a.approval_id == approval_id, a.status == 'pending', a.expires_at.is_not(None)]
        if not force:
            cond.append(a.expires_at <= now)
        with self.store.engine.begin() as c:
            c.execute(
                approvals.update()
                .where(*cond)
                .values(status='expired', decider=SYSTEM_DECIDER, decided_at=now, reason='expired')
            )
        return self.get(approval_id)

    # ------------------------------------------------------------------ deciding

    def approve(
        self,
        approval_id: str,
        *,
        decider: str,
        roles: Iterable[str] | None = None,
        role: str | None = None,
        reason: str = '',
    ) -> Approval:
        """Approve as `decider`, who holds `roles` (or the one `role`). See `reject` for the errors."""
        return self._decide(approval_id, 'approved', decider=decider, roles=roles, role=role, reason=reason)

    def reject(
        self,
        approval_id: str,
        *,
        decider: str,
        roles: Iterable[str] | None = None,
        role: str | None = None,
        reason: str,
    ) -> Approval:
        """Reject as `decider`; `reason` is required (the agent is told it).

        Raises `UnknownApprovalError` for an unknown id, and `ApprovalDecisionError` (its `.reason`
        one of 'role', 'expired', 'decided', 'input') when the decider lacks the required role, the
        approval expired or was already decided, or the input is bad. Nothing changes on error.
        """
        return self._decide(approval_id, 'rejected', decider=decider, roles=roles, role=role, reason=reason)

    def _decide(
        self,
        approval_id: str,
        status: Status,
        *,
        decider: str,
        roles: Iterable[str] | None,
        role: str | None,
        reason: str,
    ) -> Approval:
        current = self.get(approval_id)
        aid = current.approval_id
        held = set(roles or ()) | ({role} if role else set())
        reason = (reason or '').strip()
        if not isinstance(decider, str) or not decider.strip():
            raise ApprovalDecisionError(f'approval {aid}: the decider needs a name', approval_id=aid, reason='input')
        if status == 'rejected' and not reason:
            raise ApprovalDecisionError(f'approval {aid}: a rejection needs a reason', approval_id=aid, reason='input')
        if len(reason) > MAX_REASON:
            raise ApprovalDecisionError(
                f'approval {aid}: reason is {len(reason)} characters, over the limit of {MAX_REASON}',
                approval_id=aid,
                reason='input',
            )
        if current.required_role not in held:
            have = ', '.join(sorted(held)) or 'no roles'
            raise ApprovalDecisionError(
                f'approval {aid} needs role {current.required_role!r}; {decider} has {have}',
                approval_id=aid,
                reason='role',
            )
        now = time.time()
        a = approvals.c
        with self.store.engine.begin() as c:
            done = c.execute(
                approvals.update()
                .where(a.approval_id == aid, a.status == 'pending', sa.or_(a.expires_at.is_(None), a.expires_at > now))
                .values(
                    status=status,
                    decider=decider,
                    decider_role=current.required_role,
                    decided_at=now,
                    reason=reason or None,
                )
            ).rowcount
        if done != 1:
            self._refuse(self.get(aid), now)
        decided = self.get(aid)
        log.info('approval.decided', approval_id=aid, status=status, decider=decider, run_id=decided.run_id)
        self._after_decision(decided)
        return decided

    @staticmethod
    def _refuse(current: Approval, now: float) -> None:
        import datetime as dt

        def ts(t: float | None) -> str:
            return '?' if t is None else dt.datetime.fromtimestamp(t).strftime('%Y-%m-%d %H:%M:%S')

        aid = current.approval_id
        if current.status == 'expired' or current.expired_at(now):
            raise ApprovalDecisionError(
                f'approval {aid} expired at {ts(current.expires_at)}', approval_id=aid, reason='expired'
            )
        raise ApprovalDecisionError(
            f'approval {aid} was already {current.status} by {current.decider} at {ts(current.decided_at)}',
            approval_id=aid,
            reason='decided',
        )

    def _after_decision(self, a: Approval) -> None:
        """Wake the waiting workflow and write the audit record (both idempotent; failures are logged)."""
        wake(self.store, a)
        if self.audit:
            audit_decision(self.store, a)


def wake(store: StateStore, a: Approval) -> None:
    """Send the decision to the workflow waiting on `a` (a durable DBOS message, idempotent)."""
    if not a.workflow_id:
        return  # a non-durable run polls the table
    try:
        from dbos import DBOSClient

        client = DBOSClient(system_database_url=store.dbos_url)
        try:
            client.send(
                a.workflow_id,
                {'approval_id': a.approval_id, 'status': a.status},
                a.approval_id,
                idempotency_key=f'{a.approval_id}:{a.status}',
            )
        finally:
            client.destroy()
    except Exception as e:
        log.warning('approval.wake_failed', approval_id=a.approval_id, error=f'{type(e).__name__}: {e}')


def audit_decision(store: StateStore, a: Approval) -> None:
    try:
        from ..state._audit import append_audit
    except ImportError:  # pragma: no cover - the audit log ships with proctor.tracing
        return
    record = {
        'approval_id': a.approval_id,
        'kind': a.kind,
        'tool': a.tool,
        'agent_path': a.agent_path,
        'decision': a.status,
        'decider': a.decider,
        'role': a.decider_role,
        'reason': a.reason,
        'decided_at': a.decided_at,
        'data_class': a.data_class,
    }
    try:
        append_audit(store, 'approval_decision', record, run_id=a.run_id, key=f'approval:{a.approval_id}')
    except Exception as e:
        log.error('approval.audit_failed', approval_id=a.approval_id, error=f'{type(e).__name__}: {e}')
