"""Model responses of a durable run are checkpointed by the run's own recording, not as DBOS steps.

A recorded durable team (the default) records every model response anyway, keyed by a step id that
is the same on every execution of the run (`proctor.tracing._recording`). `ModelCheckpoint` makes
that recording the checkpoint of model requests:

- a run executing again (recovered after a crash, `team.resume`, a worker taking over) is served
  each model response recorded for its step instead of asking the model again, and asks the model
  from where the recording ends;
- a response that a durable action will depend on is committed before that action: a response with
  tool calls (a delegation's child workflow, a journaled side effect, an approval follow from it)
  is written at once, and one that asks only for delegations in the run's workflow code is written
  with their starts, in the transaction that stores them before they run (`Team._delegate`); a
  final answer is written in the same transaction as the row that records
  its delegation, or the run, as finished (both are queued on the store's one writer:
  `Team._delegate`, `Team._execute_once`), so a delegation never counts as finished without its
  answer. A crash before then asks the model again for that answer, which nothing durable has seen yet;
- a delegation recorded as finished (`succeeded`) is served from its record when the run executes
  again (`finished_delegation`): its agent does not run again, so none of its model calls repeat.

DBOS still makes the run a workflow (and a delegation to a specialist with toolsets or an output
function a child workflow); other delegations run in the run's workflow code, their side effects
made exactly-once by the tool journal and their approvals polled from their table
(`Team._delegation_tools`, `_engine.in_workflow`). Before, each model request was also a DBOS step:
two more transactions per request, and on this machine kind most of durability's cost per run
(`benchmarks/feature_costs.py`: 15.2 -> 8.6 ms of durable bookkeeping per K=1 run). A durable team
with `record=False` records its model responses only (`tracing._recording.ResponseRecorder`), as
DBOS recorded each step's output before: no tool results, no audit log, nothing `proctor replay` can use.
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import anyio.lowlevel
from pydantic_ai.messages import ModelResponse, ToolCallPart

if TYPE_CHECKING:
    from ..core._deps import RunDeps
    from ..state._store import StateStore

__all__ = ('ModelCheckpoint', 'delegation_text', 'durability')

_MAX_RUNS = 256  # runs whose recorded responses are kept in memory while they execute again


class ModelCheckpoint:
    """Serves recorded model responses to a run executing again; commits responses that durable
    actions depend on. One per team (it belongs to the team's state store)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        #: Runs in their first execution, started by this process (`Team._run_durable`): nothing
        #: recorded to serve, no lookup; and no earlier trace to continue.
        self.first: set[str] = set()
        self._recorded: OrderedDict[str, dict[str, str]] = OrderedDict()  # run id -> step -> payload JSON
        self._finished: OrderedDict[str, dict[str, Any]] = OrderedDict()  # run id -> delegation id -> output

    async def recorded(self, deps: RunDeps, key: str) -> ModelResponse | None:
        """The response recorded for model call `key` of `deps`'s agent run in an earlier execution."""
        if deps.run_id in self.first:
            return None
        steps = self._recorded.get(deps.run_id)
        if steps is None:
            steps = await self.store.call(self._load, deps.run_id)
        from ..tracing._recording import load_response, step_id

        payload = steps.get(step_id(deps, key))
        return load_response(json.loads(payload)['response']) if payload is not None else None

    def _load(self, run_id: str) -> dict[str, str]:
        import sqlalchemy as sa

        from ..state._schema import recordings
        from ..state._writer import flusher

        flusher.flush_store(self.store)  # what this process recorded of the run and has not written yet
        r = recordings.c
        with self.store.engine.connect() as c:
            steps = dict(
                c.execute(sa.select(r.step, r.payload).where(r.run_id == run_id, r.kind == 'model')).tuples().all()
            )
        self._recorded[run_id] = steps
        while len(self._recorded) > _MAX_RUNS:
            self._recorded.popitem(last=False)
        return steps

    async def finished_delegation(self, deps: RunDeps, delegation_id: str, output_type: Any) -> str | None:
        """What delegation `delegation_id` returned, when an earlier execution of the run recorded it
        as finished: the text its tool gave the supervisor (None: run it)."""
        if deps.run_id in self.first:
            return None
        done = self._finished.get(deps.run_id)
        if done is None:
            done = await self.store.call(self._load_finished, deps.run_id)
        if delegation_id not in done:
            return None
        return delegation_text(done[delegation_id], output_type)

    def _load_finished(self, run_id: str) -> dict[str, Any]:
        import sqlalchemy as sa

        from ..state._schema import delegations
        from ..state._writer import flusher

        flusher.flush_store(self.store)  # what this process queued of the run (its rows) and has not written yet
        d = delegations.c
        with self.store.engine.connect() as c:
            q = sa.select(d.delegation_id, d.output).where(d.run_id == run_id, d.status == 'succeeded')
            done = {did: None if out is None else json.loads(out) for did, out in c.execute(q).tuples()}
        self._finished[run_id] = done
        while len(self._finished) > _MAX_RUNS:
            self._finished.popitem(last=False)
        return done

    @staticmethod
    def must_commit(response: ModelResponse, self_committing: frozenset[str] = frozenset()) -> bool:
        """A response with tool calls: what follows (child workflows, side effects, approvals) depends
        on it. Unless it calls only tools in `self_committing`, which commit it before they act."""
        return any(isinstance(p, ToolCallPart) and p.tool_name not in self_committing for p in response.parts)

    async def commit(self) -> None:
        """Store what the run queued (a response just recorded, a delegation's start) before what
        depends on it acts. A group commit: one pass of the event loop first, so sibling branches
        that reach their checkpoints together (the members of one fan-out) queue theirs too, and the
        first to write stores them all in one transaction; the others find nothing left to store."""
        from ..tracing._setup import settle

        await anyio.lowlevel.checkpoint()
        await settle(self.store, spans=False)

    def forget(self, run_id: str) -> None:
        """Run `run_id` finished executing here: drop what was loaded for it."""
        self._recorded.pop(run_id, None)
        self._finished.pop(run_id, None)


def delegation_text(output: Any, output_type: Any = str) -> str:
    """The text a delegation's tool returns for its (guarded) output, the same from a live output as
    from its record (`RunRecords` keeps outputs as JSON: a pydantic model as its `model_dump`)."""
    from pydantic import BaseModel

    if isinstance(output, str) and (output_type is str or not isinstance(output_type, type)):
        return output
    if isinstance(output, BaseModel):
        return output.model_dump_json()
    if isinstance(output_type, type) and issubclass(output_type, BaseModel):
        try:
            return output_type.model_validate(output).model_dump_json()
        except Exception:
            pass
    return json.dumps(output, default=str)


def durability(name: str, models: dict[str, Any]) -> Any:
    """pydantic-ai's `DBOSDurability` for one agent of a durable team, without model steps (the
    team's `ModelCheckpoint` covers model requests): delegations to specialists with toolsets or
    output functions are child workflows, MCP calls steps, as before."""
    return _checkpointed_durability_class()(name=name, models=models)


@functools.cache
def _checkpointed_durability_class() -> type:
    from pydantic_ai.durable_exec.dbos import DBOSDurability

    class CheckpointedDBOSDurability(DBOSDurability):  # type: ignore[misc,valid-type]
        """`DBOSDurability` whose model requests run in workflow code, as plain requests."""

        async def wrap_model_request(self, ctx: Any, *, request_context: Any, handler: Any) -> Any:
            return await handler(request_context)

        async def before_model_request(self, ctx: Any, request_context: Any) -> Any:
            return request_context

        async def prepare_model_request(self, ctx: Any, request_context: Any) -> Any:
            return request_context

    return CheckpointedDBOSDurability
