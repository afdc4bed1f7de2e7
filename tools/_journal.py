"""The tool journal (`proctor_journal`): every side effect of a tool call happens exactly once.

Each side effect gets an idempotency key from its tool call's stable key (run or delegation, tool
call id, and the effect's position in the call). The effect runs as one DBOS step (in a durable
run) whose function writes `started`, acts, and commits `done` with the result before returning:

- a recovered run whose step was recorded gets the recorded outcome (DBOS does not run it again);
- a step that was not recorded runs again, and its function reads the journal first: `done` returns
  the journaled result without acting; `started` without `done` means the effect may or may not have
  happened before the crash, so the call is marked **in doubt** and an approval of kind `in_doubt`
  asks an operator: approve re-runs it, reject skips it and tells the agent. Never a blind repeat.

A journal row is begun (and an in-doubt effect re-run) only while this execution still owns the
run's DBOS workflow (`_engine.owner_fence`): a worker that was declared dead while it still ran (a
long pause) and whose run another worker took over is refused (`ownership_lost()`, which ends its
execution of the run), so a live model's different tool call there cannot act a second time.

The workflow branches on the step's recorded outcome (not on a fresh read), so every recovery
issues the same DBOS operations in the same order. Non-durable runs, and delegations running in
their parent's workflow code (which issue no DBOS operations: `_engine.in_workflow()`), use the same
journal directly: it alone gives them the same exactly-once and in-doubt behaviour.
"""

from __future__ import annotations

import base64
import json
import pickle
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from .._log import get_logger
from ..core._events import ToolCall, ToolCallDenied, current_tool_call
from ..exceptions import RunError
from ..guardrails._gate import ApprovalGate, ApprovalRequest
from ..state._dbos import in_workflow, owner_fence, ownership_lost, run_step
from ..state._schema import journal
from ..state._scope import current_scope
from ..state._store import StateStore

__all__ = (
    'side_effect_step',
    'ToolJournal',
    'EffectOutcome',
    'journaled',
    'run_effect',
    'IN_DOUBT_ROLE',
    'IN_DOUBT_EXPIRY_S',
)

T = TypeVar('T')
log = get_logger('proctor.journal')

IN_DOUBT_ROLE = 'operator'
IN_DOUBT_EXPIRY_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class EffectOutcome:
    """What one journaled step found or did: `done` (result), `failed` (error), `in_doubt`, `skipped`."""

    key: str
    status: str
    blob: str | None = None


def _encode(value: Any) -> str:
    try:
        return 'j:' + json.dumps(value)
    except (TypeError, ValueError):
        return 'p:' + base64.b64encode(pickle.dumps(value)).decode()


def _decode(blob: str | None) -> Any:
    if blob is None:
        return None
    if blob.startswith('j:'):
        return json.loads(blob[2:])
    if blob.startswith('p:'):
        return pickle.loads(base64.b64decode(blob[2:]))
    return blob


def _encode_error(e: BaseException) -> str:
    try:
        return 'p:' + base64.b64encode(pickle.dumps(e)).decode()
    except Exception:
        return 'j:' + json.dumps(f'{type(e).__name__}: {e}')


def _decode_error(blob: str | None) -> BaseException:
    value = _decode(blob)
    return value if isinstance(value, BaseException) else RunError(f'the side effect failed before: {value}')


class ToolJournal:
    """Rows of `proctor_journal` (sync SQL; each write is its own committed transaction)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def get(self, key: str) -> dict[str, Any] | None:
        with self.store.engine.connect() as c:
            row = c.execute(sa.select(journal).where(journal.c.key == key)).mappings().first()
        return None if row is None else dict(row)

    def list(self, run_id: str) -> list[dict[str, Any]]:
        with self.store.engine.connect() as c:
            q = sa.select(journal).where(journal.c.run_id == run_id).order_by(journal.c.started_at)
            return [dict(r) for r in c.execute(q).mappings()]

    def _update(self, key: str, from_status: tuple[str, ...], **values: Any) -> bool:
        with self.store.engine.begin() as c:
            q = journal.update().where(journal.c.key == key, journal.c.status.in_(from_status)).values(**values)
            return c.execute(q).rowcount == 1

    def _begin(self, key: str, meta: dict[str, Any]) -> bool:
        values = dict(
            key=key,
            run_id=meta['run_id'],
            agent_path=meta['agent_path'],
            tool=meta['tool'],
            args=json.dumps(meta['args'], default=str, sort_keys=True),
            status='started',
            started_at=time.time(),
        )
        with self.store.engine.begin() as c:
            if c.dialect.name == 'postgresql':
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            return (
                c.execute(insert(journal).values(**values).on_conflict_do_nothing(index_elements=['key'])).rowcount == 1
            )

    def skip(self, key: str, reason: str) -> None:
        self._update(
            key, ('in_doubt', 'started'), status='skipped', result='j:' + json.dumps(reason), finished_at=time.time()
        )

    def reruns(self, key: str) -> int:
        """How many approved re-runs of in-doubt effect `key` have begun (each needs its own approval)."""
        row = self.get(key)
        if row is None or row['status'] not in ('started', 'in_doubt') or not row['result']:
            return 0
        try:
            value = _decode(row['result'])
        except Exception:
            return 0
        return int(value.get('reruns', 0)) if isinstance(value, dict) else 0

    def outcome(self, key: str) -> EffectOutcome | None:
        row = self.get(key)
        if row is None:
            return None
        status = 'in_doubt' if row['status'] == 'started' else row['status']
        return EffectOutcome(key, status, row['result'])

    async def execute(
        self, key: str, meta: dict[str, Any], fn: Callable[[], Awaitable[Any]], *, rerun: bool
    ) -> EffectOutcome:
        """Act once for `key`: run `fn` unless the journal says it already ran (or may have).

        `rerun`: an operator approved re-running this in-doubt effect.
        """
        row = self.get(key)
        if row is None and self._fenced(key, meta, lambda: self._begin(key, meta)):
            return await self._act(key, fn)
        row = row or self.get(key)
        assert row is not None
        status = row['status']
        if status == 'started':
            self._update(key, ('started',), status='in_doubt')
            log.warning('journal.in_doubt', key=key, tool=row['tool'])
            return EffectOutcome(key, 'in_doubt')
        if status == 'in_doubt':
            # The re-runs begun are counted in the row: one cut off by another crash is in doubt
            # again, and asks a new approval (`reruns`), never the one already given.
            reruns = _encode({'reruns': self.reruns(key) + 1})
            if rerun and self._fenced(
                key,
                meta,
                lambda: self._update(key, ('in_doubt',), status='started', started_at=time.time(), result=reruns),
            ):
                return await self._act(key, fn)
            return EffectOutcome(key, 'in_doubt')
        return EffectOutcome(key, status, row['result'])

    @staticmethod
    def _fenced(key: str, meta: dict[str, Any], begin: Callable[[], bool]) -> bool:
        """`begin()` while this execution owns its workflow; raises `ownership_lost()` if it does not."""
        try:
            with owner_fence():
                return begin()
        except ownership_lost():
            log.warning('journal.fenced', key=key, tool=meta['tool'], run_id=meta['run_id'])
            raise

    async def _act(self, key: str, fn: Callable[[], Awaitable[Any]]) -> EffectOutcome:
        try:
            result = await fn()
        except Exception as e:
            self._update(key, ('started',), status='failed', result=_encode_error(e), finished_at=time.time())
            raise
        blob = _encode(result)
        self._update(
            key, ('started',), status='done', result=blob, finished_at=time.time()
        )  # committed before returning
        return EffectOutcome(key, 'done', blob)


async def run_effect(
    name: str, fn: Callable[[], Awaitable[T]], *, key: str, meta: dict[str, Any], store: StateStore, deps: Any = None
) -> T:
    """Run side effect `fn` exactly once under idempotency key `key` (see the module docstring)."""
    book = ToolJournal(store)
    durable = in_workflow()
    rerun = False
    while True:
        if durable:

            async def step(rerun: bool = rerun) -> EffectOutcome:
                return await book.execute(key, meta, fn, rerun=rerun)

            out: EffectOutcome | None = await run_step(name, step)
            if out is None or out.key != key:
                # A recovered workflow replayed another call's recording at this position (concurrent
                # calls reordered): the journal, not the recording, says what happened to ours.
                out = book.outcome(key)
                if out is None:
                    continue
        else:
            out = await book.execute(key, meta, fn, rerun=rerun)
        if out.status == 'done':
            return _decode(out.blob)
        if out.status == 'failed':
            raise _decode_error(out.blob)
        if out.status == 'skipped':
            raise ToolCallDenied(f'The {meta["tool"]} call was skipped: {_decode(out.blob)}')
        a = await _ask_in_doubt(store, key, meta, deps, book.reruns(key))
        if a.status == 'approved':
            rerun = True
            continue
        why = a.reason if a.status == 'rejected' else 'nobody decided before the approval expired'
        reason = (
            f'its outcome was unknown after a crash and the re-run was not approved (approval {a.approval_id}: {why})'
        )
        book.skip(key, reason)
        raise ToolCallDenied(f'The {meta["tool"]} call was skipped: {reason}. Check its effect before retrying it.')


async def _ask_in_doubt(store: StateStore, key: str, meta: dict[str, Any], deps: Any, attempt: int) -> Any:
    req = ApprovalRequest(
        key=key,
        run_id=meta['run_id'],
        agent_path=meta['agent_path'],
        tool=meta['tool'],
        args=meta['args'],
        data_class=meta.get('data_class', 'internal'),
        role=IN_DOUBT_ROLE,
        kind='in_doubt',
        attempt=attempt,
        reason=(
            f'in doubt: the process stopped while {meta["tool"]} was running, so it may or may not have taken '
            'effect. Approve to run it again, reject to skip it.'
        ),
        expires_after_s=IN_DOUBT_EXPIRY_S,
        delegation_id=getattr(deps, 'delegation_id', None),
    )
    return await ApprovalGate(store).decide(req)


async def journaled(ctx: Any, name: str, fn: Callable[[], Awaitable[T]]) -> T:
    """Run side effect `fn` of the tool whose `RunContext` is `ctx` exactly once (durable or not).

    The key comes from `ctx.deps` and `ctx.tool_call_id`, the same as the tool call's key.
    """
    call = current_tool_call.get()
    if call is None or call.tool_call_id != ctx.tool_call_id:
        d = ctx.deps
        call = ToolCall(
            deps=d,
            key=f'{d.delegation_id or d.run_id}#tool:{ctx.tool_call_id}',
            tool=ctx.tool_name or name,
            tool_call_id=ctx.tool_call_id or '',
            args={},
            step=ctx.run_step,
        )
    return await effect_of_call(call, name, fn)


async def effect_of_call(call: Any, name: str, fn: Callable[[], Awaitable[T]]) -> T:
    """Run side effect `fn` as the next journaled effect of tool call `call`."""
    d = call.deps
    scope = current_scope.get()
    if scope is None:
        raise RunError(
            f'side effect {name!r} of tool {call.tool!r} ran outside a team run: no journal to keep it in',
            run_id=d.run_id,
        )
    store = scope.store
    meta = {
        'run_id': d.run_id,
        'agent_path': d.agent_path,
        'tool': call.tool,
        'args': call.args,
        'data_class': d.data_class,
    }
    return await run_effect(name, fn, key=call.next_effect_key(), meta=meta, store=store, deps=d)


async def side_effect_step(name: str, fn: Callable[[], Awaitable[T]]) -> T:
    """Run side effect `fn` exactly once.

    Inside a tool call of a team run the effect is journaled: it happens once, and one whose outcome
    a crash left unknown becomes an in-doubt approval. Elsewhere in a durable run's workflow code it
    is a DBOS step (a recovered run gets the recorded result instead of acting again); outside any
    run it just runs.
    """
    call = current_tool_call.get()
    if call is not None:
        return await effect_of_call(call, name, fn)
    if not in_workflow():
        return await fn()
    return await run_step(name, fn)
