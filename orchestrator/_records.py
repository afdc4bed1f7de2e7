"""Reading and writing run and delegation records (the `proctor_runs` / `proctor_delegations` tables)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .._schema import delegations, runs
from .._state import StateStore
from ..exceptions import UnknownRunError

__all__ = ('RunRecord', 'DelegationRecord', 'RunRecords')


@dataclass
class DelegationRecord:
    delegation_id: str
    run_id: str
    seq: int
    agent_path: str
    specialist: str
    subtask: str
    model_id: str | None
    route_reason: str | None
    status: str
    output: Any
    error: str | None
    started_at: float
    finished_at: float | None
    input_tokens: int
    output_tokens: int
    requests: int
    cost_usd: float


@dataclass
class RunRecord:
    run_id: str
    team: str
    project: str
    data_class: str
    task: str
    status: str
    factory: str | None
    workspace: str | None
    started_at: float
    finished_at: float | None
    output: Any
    error: str | None
    input_tokens: int
    output_tokens: int
    requests: int
    cost_usd: float
    trace_id: str | None
    durable: bool
    delegations: list[DelegationRecord] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != 'delegations'}
        d['duration_s'] = self.duration_s
        d['delegations'] = [x.__dict__ for x in self.delegations]
        return d


def _load(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _dump(value: Any) -> str:
    if hasattr(value, 'model_dump'):
        value = value.model_dump(mode='json')
    return json.dumps(value, default=str)


class RunRecords:
    """Run and delegation rows in one state store (sync; call through a thread from async code)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def create_run(
        self,
        *,
        run_id: str,
        team: str,
        project: str,
        data_class: str,
        task: str,
        factory: str | None,
        workspace: str | None,
        durable: bool,
        status: str = 'running',
    ) -> None:
        with self.store.engine.begin() as c:
            exists = c.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first()
            if exists:
                c.execute(runs.update().where(runs.c.run_id == run_id).values(status=status))
                return
            c.execute(
                runs.insert().values(
                    run_id=run_id, team=team, project=project, data_class=data_class, task=task,
                    status=status, factory=factory, workspace=workspace, started_at=time.time(),
                    input_tokens=0, output_tokens=0, requests=0, cost_usd=0.0, durable=durable,
                )
            )  # fmt: skip

    def set_status(self, run_id: str, status: str, *, error: str | None = None) -> None:
        with self.store.engine.begin() as c:
            values: dict[str, Any] = {'status': status}
            if error is not None:
                values['error'] = error
            if status in ('succeeded', 'failed', 'cancelled'):
                values['finished_at'] = time.time()
            c.execute(runs.update().where(runs.c.run_id == run_id).values(**values))

    def finish_run(
        self, run_id: str, *, output: Any, input_tokens: int, output_tokens: int, requests: int, cost_usd: float
    ) -> None:
        with self.store.engine.begin() as c:
            c.execute(
                runs.update()
                .where(runs.c.run_id == run_id)
                .values(
                    status='succeeded', output=_dump(output), finished_at=time.time(), error=None,
                    input_tokens=input_tokens, output_tokens=output_tokens, requests=requests, cost_usd=cost_usd,
                )
            )  # fmt: skip

    def set_trace_id(self, run_id: str, trace_id: str) -> None:
        with self.store.engine.begin() as c:
            c.execute(runs.update().where(runs.c.run_id == run_id, runs.c.trace_id.is_(None)).values(trace_id=trace_id))

    def start_delegation(
        self,
        *,
        delegation_id: str,
        run_id: str,
        agent_path: str,
        specialist: str,
        subtask: str,
        model_id: str | None,
        route_reason: str | None,
    ) -> None:
        with self.store.engine.begin() as c:
            exists = c.execute(
                sa.select(delegations.c.delegation_id).where(delegations.c.delegation_id == delegation_id)
            ).first()
            if exists:  # a resumed run re-enters the same delegation
                return
            seq = c.execute(
                sa.select(sa.func.count()).select_from(delegations).where(delegations.c.run_id == run_id)
            ).scalar_one()
            c.execute(
                delegations.insert().values(
                    delegation_id=delegation_id, run_id=run_id, seq=seq, agent_path=agent_path,
                    specialist=specialist, subtask=subtask, model_id=model_id, route_reason=route_reason,
                    status='running', started_at=time.time(), input_tokens=0, output_tokens=0, requests=0,
                    cost_usd=0.0,
                )
            )  # fmt: skip

    def finish_delegation(
        self,
        delegation_id: str,
        *,
        status: str,
        output: Any = None,
        error: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        requests: int = 0,
        cost_usd: float = 0.0,
        model_id: str | None = None,
    ) -> None:
        values: dict[str, Any] = dict(
            status=status, output=None if output is None else _dump(output), error=error,
            finished_at=time.time(), input_tokens=input_tokens, output_tokens=output_tokens,
            requests=requests, cost_usd=cost_usd,
        )  # fmt: skip
        if model_id is not None:
            values['model_id'] = model_id
        with self.store.engine.begin() as c:
            c.execute(delegations.update().where(delegations.c.delegation_id == delegation_id).values(**values))

    def get(self, run_id: str, *, with_delegations: bool = True) -> RunRecord:
        with self.store.engine.connect() as c:
            row = c.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
            if row is None:
                # accept a unique prefix, as git does for commits
                rows = c.execute(sa.select(runs).where(runs.c.run_id.like(f'{run_id}%')).limit(2)).mappings().all()
                if len(rows) != 1:
                    raise UnknownRunError(run_id)
                row = rows[0]
            rec = self._run(row)
            if with_delegations:
                drows = c.execute(
                    sa.select(delegations).where(delegations.c.run_id == rec.run_id).order_by(delegations.c.seq)
                ).mappings()
                rec.delegations = [self._delegation(d) for d in drows]
            return rec

    def list(self, *, limit: int = 50, status: str | None = None, team: str | None = None) -> list[RunRecord]:
        q = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        if status:
            q = q.where(runs.c.status == status)
        if team:
            q = q.where(runs.c.team == team)
        with self.store.engine.connect() as c:
            return [self._run(r) for r in c.execute(q).mappings()]

    @staticmethod
    def _run(row: Any) -> RunRecord:
        d = dict(row)
        d['output'] = _load(d['output'])
        return RunRecord(**d)

    @staticmethod
    def _delegation(row: Any) -> DelegationRecord:
        d = dict(row)
        d['output'] = _load(d['output'])
        return DelegationRecord(**d)
