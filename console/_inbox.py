"""The approval inbox: pending and decided approvals, with what an operator needs to decide, and decisions.

Decisions go through the approvals API (`proctor.guardrails.ApprovalQueue`): one conditional
update that only a pending, unexpired approval passes and only a holder of the required role may
make, then it wakes the waiting run and appends the decision to the audit log. The console maps
the queue's refusals to HTTP statuses (403 role, 409 already decided, 410 expired).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..exceptions import ApprovalDecisionError, UnknownApprovalError
from ..guardrails._approvals import ApprovalQueue
from ..state._schema import approvals
from ..state._store import StateStore
from ._auth import Operator
from ._data import ConsoleData
from ._diff import FileDiff, file_write_diff

__all__ = ('ApprovalView', 'Inbox', 'DecisionRefused')


class DecisionRefused(Exception):
    """A decision the console refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass
class ApprovalView:
    approval_id: str
    run_id: str
    kind: str
    agent_path: str
    tool: str
    args: Any
    data_class: str
    required_role: str
    reason_required: str | None
    created_at: float
    expires_at: float | None
    status: str  # pending|approved|rejected|expired (a pending one past its expiry shows as expired)
    decider: str | None
    decider_role: str | None
    decided_at: float | None
    reason: str | None
    cost_so_far: float = 0.0
    tokens_so_far: int = 0
    diff: FileDiff | None = None

    @property
    def args_json(self) -> str:
        return json.dumps(self.args, indent=2, sort_keys=True, default=str)

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != 'diff'}
        if self.diff is not None:
            d['diff'] = {
                'path': self.diff.path,
                'new_file': self.diff.new_file,
                'added': self.diff.added,
                'removed': self.diff.removed,
                'note': self.diff.note,
            }
        return d


#: HTTP status for each `ApprovalDecisionError.reason`.
_REFUSAL_STATUS = {'role': 403, 'expired': 410, 'decided': 409, 'input': 400}


def _view(row: Any, now: float) -> ApprovalView:
    d = dict(row)
    if isinstance(d['args'], str):
        try:
            d['args'] = json.loads(d['args'])
        except ValueError:
            pass
    d.pop('workflow_id', None)
    if d['status'] == 'pending' and d['expires_at'] is not None and d['expires_at'] <= now:
        d['status'] = 'expired'
    return ApprovalView(**d)


class Inbox:
    """Approvals of one state store, as the inbox shows them (sync: call through a thread)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.data = ConsoleData(store)
        self.queue = ApprovalQueue(store)

    def _enrich(self, views: list[ApprovalView], *, with_diff: bool) -> list[ApprovalView]:
        run_ids = sorted({v.run_id for v in views})
        costs = self.data.costs_by_run(run_ids)
        workspaces = self.data.run_workspaces(run_ids) if with_diff else {}
        for v in views:
            v.cost_so_far, v.tokens_so_far = costs.get(v.run_id, (0.0, 0))
            if with_diff:
                v.diff = file_write_diff(v.tool, v.args, workspaces.get(v.run_id))
        return views

    def pending(self) -> list[ApprovalView]:
        """Approvals still waiting for a decision (including those past expiry not yet swept), newest first."""
        now = time.time()
        views = [_view(a.to_json(), now) for a in self.queue.list(status='pending', limit=500)]
        return self._enrich(views, with_diff=True)

    def history(self, *, limit: int = 50) -> list[ApprovalView]:
        """Decided (or expired) approvals, most recently decided first."""
        now = time.time()
        when = sa.func.coalesce(approvals.c.decided_at, approvals.c.expires_at, approvals.c.created_at)
        with self.store.engine.connect() as c:
            q = sa.select(approvals).where(approvals.c.status != 'pending').order_by(when.desc()).limit(limit)
            views = [_view(r, now) for r in c.execute(q).mappings()]
        return self._enrich(views, with_diff=False)

    def get(self, approval_id: str) -> ApprovalView:
        """One approval by exact id; `UnknownApprovalError` otherwise."""
        a = self.queue.get(approval_id)
        if a.approval_id != approval_id.strip():  # the queue accepts prefixes; a URL names one approval exactly
            raise UnknownApprovalError(approval_id)
        return self._enrich([_view(a.to_json(), time.time())], with_diff=True)[0]

    def decide(self, approval_id: str, *, approve: bool, operator: Operator, reason: str) -> ApprovalView:
        """Approve or reject as `operator`; `DecisionRefused` (400/403/404/409/410) means nothing changed."""
        decide = self.queue.approve if approve else self.queue.reject
        try:
            if self.queue.get(approval_id).approval_id != approval_id:
                raise UnknownApprovalError(approval_id)
            decide(approval_id, decider=operator.name, roles=operator.roles, reason=reason)
        except UnknownApprovalError as e:
            raise DecisionRefused(404, str(e)) from None
        except ApprovalDecisionError as e:
            raise DecisionRefused(_REFUSAL_STATUS.get(e.reason, 409), str(e)) from None
        return self.get(approval_id)
