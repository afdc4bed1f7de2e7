"""`Team`: a supervisor and its specialists, run durably as one workflow per task."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic

import anyio
import anyio.to_thread
from opentelemetry import trace as otel_trace
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.messages import ModelResponse
from pydantic_ai.usage import RunUsage

from .._lazy import lazy_module
from .._log import get_logger
from ..agents._specialist import OutputT, Specialist, Supervisor
from ..core._data_classes import DATA_CLASSES
from ..core._deps import RunDeps
from ..core._events import RunEvent, RunObserver, emit
from ..exceptions import RunError, UnknownRunError, UserError
from ..guardrails._pipeline import GuardrailPipeline
from ..guardrails._protocol import GuardContext, Hook
from ..models._errors import failure_text, provider_error
from ..models._routing import PreferredModelRouter, Route, Router
from ..state import _dbos as _engine
from ..state._scope import RunScope, run_scope
from ..tools._workspace import Workspace
from ..tracing._events import apply_guardrails
from ..tracing._genai import GenAISpans
from ._checkpoint import ModelCheckpoint, durability
from ._live import teams
from ._observers import ObserverCapability, TracedObserverCapability
from ._tree import DEFAULT_MAX_DEPTH, SUPERVISOR_PATH, AgentTree

if TYPE_CHECKING:
    from ..guardrails import _observer as _guard_observer
    from ..models import _ledger
    from ..state import _records, _store
    from ..state._records import DelegationRecord, DelegationStatus, RunRecord, RunRecords, RunStatus
    from ..state._store import StateStore
    from ..tracing import _audit, _continuity, _recording, _setup
else:
    # The state store and what writes to it (SQLAlchemy and the schema, ~0.1 s to import) load when a
    # team is built, not with `from proctor import Team`.
    _guard_observer = lazy_module('proctor.guardrails._observer')
    _ledger = lazy_module('proctor.models._ledger')
    _records = lazy_module('proctor.state._records')
    _store = lazy_module('proctor.state._store')
    _audit = lazy_module('proctor.tracing._audit')
    _continuity = lazy_module('proctor.tracing._continuity')
    _recording = lazy_module('proctor.tracing._recording')
    _setup = lazy_module('proctor.tracing._setup')

__all__ = ('Team', 'TeamResult', 'DelegationResult', 'DATA_CLASSES')

log = get_logger('proctor.team')

MAX_TASK_CHARS = 100_000
#: `Team(instrumentation=...)`: proctor's own GenAI spans (the default), or pydantic-ai's `Instrumentation`.
INSTRUMENTATIONS = ('proctor', 'pydantic-ai')


@dataclass
class DelegationResult:
    """One delegation of a run: who did what, on which model, with what result and usage."""

    specialist: str
    subtask: str
    output: Any
    status: DelegationStatus
    model_id: str | None
    route_reason: str | None
    agent_path: str
    usage: RunUsage
    cost_usd: float
    error: str | None = None

    @classmethod
    def from_record(cls, d: DelegationRecord) -> DelegationResult:
        return cls(
            specialist=d.specialist,
            subtask=d.subtask,
            output=d.output,
            status=d.status,
            model_id=d.model_id,
            route_reason=d.route_reason,
            agent_path=d.agent_path,
            usage=RunUsage(input_tokens=d.input_tokens, output_tokens=d.output_tokens, requests=d.requests),
            cost_usd=d.cost_usd,
            error=d.error,
        )


@dataclass
class TeamResult(Generic[OutputT]):
    """What `Team.run` returns."""

    run_id: str
    output: OutputT
    delegations: list[DelegationResult]
    usage: RunUsage
    cost_usd: float
    state_dir: Path
    status: RunStatus = 'succeeded'
    extra: dict[str, Any] = field(default_factory=dict)


def _usage_attributes(usage: RunUsage, route: Route) -> dict[str, Any]:
    """The `proctor.*` usage of one agent run (its own, without the agents it delegated to)."""
    return {
        'proctor.input_tokens': usage.input_tokens,
        'proctor.output_tokens': usage.output_tokens,
        'proctor.requests': usage.requests,
        'proctor.cost_usd': route.cost(usage),
    }


def _served_model(messages: Sequence[Any], routed: str) -> str:
    """The model that gave an agent run's final answer: a routed model stamps it on the response
    (`metadata['proctor']`) when a fallback served instead of the preferred model; else the routed one."""
    for m in reversed(messages):
        if isinstance(m, ModelResponse):
            return ((m.metadata or {}).get('proctor') or {}).get('model_id') or routed
    return routed


def _needs_child_workflow(spec: Specialist[Any]) -> bool:
    """Whether a durable delegation to `spec` needs DBOS steps of its own, so a child workflow: it has
    toolsets (pydantic-ai makes MCP calls DBOS steps) or an output function (which may call
    `side_effect_step` outside any tool call), or it leads a member that does (a child workflow is
    started from workflow code, never from a delegation running in its parent's). Everything else a
    specialist does is checkpointed by proctor's own tables, which concurrent branches of one
    workflow can share: model responses by
    the run's recording, side effects of its function tools by the tool journal (keyed by the call,
    not by DBOS's operation order), approvals by the approvals table (waited for by polling it). A
    child workflow would add ~7 ms of DBOS bookkeeping per delegation (`feature_costs.py`)."""
    return bool(spec.toolsets) or not isinstance(spec.output_type, type) or any(map(_needs_child_workflow, spec.team))


def _launch(store: StateStore) -> None:
    """DBOS on `store`, with the run workflows registered (imported here: DBOS loads on the first durable run)."""
    from ._workflow import launch

    launch(store)


def _recorded_run(records: RunRecords, run_id: str, task: str) -> bool:
    """Whether run `run_id` is recorded already (the same run: its task must match)."""
    try:
        rec = records.get(run_id, with_delegations=False)
    except UnknownRunError:
        return False
    if rec.run_id != run_id:  # a prefix of another run's id
        return False
    if rec.task != task:
        raise UserError(f'run id {run_id!r} is taken by a run with another task; pick a new run id')
    return True


def _text_of(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, BaseModel):
        return output.model_dump_json()
    import json

    return json.dumps(output, default=str)


class Team(Generic[OutputT]):
    """A supervisor and its specialists.

    `await team.run(task, project=..., data_class=...)` runs the supervisor on `task`; it delegates
    through one tool per specialist (`delegate_to_<name>`), several in one turn running
    concurrently. A specialist with `team=[...]` leads a sub-team and delegates to its members the
    same way, to `max_depth` delegations below the supervisor (default 4). With `durable=True` (the
    default) the run is a DBOS workflow in the state store, so an interrupted run resumes (`team.resume(run_id)`, `proctor resume RUN`) without repeating
    finished model calls or side effects. `factory` ('module:callable' or 'file.py:callable') is
    recorded with each run so another process can rebuild this team to resume or replay it.
    Traced agents get proctor's own GenAI spans (`proctor.tracing._genai`); `instrumentation='pydantic-ai'`
    uses pydantic-ai's `Instrumentation` capability instead (same span names and GenAI attributes, more cost).
    """

    def __init__(
        self,
        supervisor: Supervisor[OutputT] | Specialist[OutputT],
        specialists: Sequence[Specialist[Any]],
        *,
        name: str = 'team',
        workspace: str | os.PathLike[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
        durable: bool = True,
        guardrails: GuardrailPipeline | Sequence[Any] = (),
        router: Router | None = None,
        factory: str | None = None,
        record: bool = True,
        observers: Sequence[RunObserver] = (),
        tracer_provider: Any = None,
        trace: bool = True,
        max_depth: int = DEFAULT_MAX_DEPTH,
        instrumentation: str = 'proctor',
    ) -> None:
        if not specialists:
            raise UserError(f'team {name!r} needs at least one specialist')
        names = [s.name for s in specialists]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes or supervisor.name in names:
            raise UserError(f'team {name!r}: duplicate agent names {sorted(dupes | ({supervisor.name} & set(names)))}')
        self.tree = AgentTree.build(name, supervisor, specialists, max_depth=max_depth)
        self.name = name
        self.supervisor = supervisor
        self.max_depth = max_depth
        self.specialists: dict[str, Specialist[Any]] = self.tree.members[SUPERVISOR_PATH]  # the supervisor's members
        self.workspace = Workspace.open(workspace) if workspace is not None else None
        self.store = _store.StateStore(state_dir, database_url=database_url)
        self.records = _records.RunRecords(self.store)
        self.durable = durable
        self.record = record
        self.factory = factory
        self.guardrails = guardrails if isinstance(guardrails, GuardrailPipeline) else GuardrailPipeline(guardrails)
        self.router: Router = router or PreferredModelRouter()
        self.observers: list[RunObserver] = list(observers)
        if record:
            # Recorder first: it keeps the raw tool results replay returns. Audit: one record per model call.
            self.observers[:0] = [
                _recording.Recorder(self.store, workspace=self.workspace.root if self.workspace else None),
                _audit.AuditObserver(self.store),
            ]
            if type(self.router) is PreferredModelRouter and not any(
                isinstance(o, _ledger.LedgerObserver) for o in observers
            ):
                # Without a ModelRouter (which brings its own ledger, with prices) calls still reach the
                # ledger, unpriced, so `proctor usage` counts every run's tokens.
                self.observers.insert(0, _ledger.LedgerObserver(store=self.store))
        if self.guardrails.has('tool_call') or self.guardrails.has('tool_output'):
            # Tool guards and approval checkpoints, before the caller's observers (after the
            # recorder, which keeps raw tool results for replay).
            self.observers.insert(
                len(self.observers) - len(observers),
                _guard_observer.GuardrailObserver(self.guardrails, self.store, record=record),
            )
        self._model_ids: dict[int, str] = {}
        # Durable: the run's recording checkpoints its model responses (`_checkpoint`); without
        # `record`, a recorder of model responses only.
        self._checkpoint = ModelCheckpoint(self.store) if durable else None
        if durable and not record:
            self.observers.insert(0, _recording.ResponseRecorder(self.store))
        # The router's ledger and budget guard first: later observers read the served model and cost.
        router_observers = getattr(self.router, 'observers', None)
        if router_observers is not None:
            self.observers[:0] = [o for o in router_observers() if not any(o is x for x in observers)]
        # Its calls reach its ledger: the ledger's writers keep each run's and delegation's usage (one account).
        self.records.usage_from_ledger = record and any(
            isinstance(o, _ledger.LedgerObserver) and (o.store is None or o.store.url == self.store.url)
            for o in self.observers
        )
        if instrumentation not in INSTRUMENTATIONS:
            raise UserError(
                f'team {name!r}: unknown instrumentation {instrumentation!r} (one of {", ".join(INSTRUMENTATIONS)})'
            )
        self.instrumentation = instrumentation
        self.trace = trace
        self.tracer_provider = _setup.resolve_tracer_provider(tracer_provider, self.store) if trace else None
        # The agents' GenAI spans: proctor's own (`tracing._genai`), unless pydantic-ai's `Instrumentation` is asked for.
        self._spans = (
            GenAISpans(self.tracer_provider, content=_setup.trace_content())
            if self.tracer_provider is not None and instrumentation == 'proctor'
            else None
        )
        self.tracer = otel_trace.get_tracer(
            'proctor', tracer_provider=self.tracer_provider or otel_trace.NoOpTracerProvider()
        )
        self._agents: dict[str, Agent[RunDeps, Any]] = {}  # by agent path
        for path, spec in self.tree.specs.items():
            try:
                self._agents[path] = self._build_agent(spec, path)
            except UserError as e:  # its own class (UnknownModelError, ...), naming the agent's path
                e.args = (f'team {name!r}: agent {path}: {e}',)
                raise
        teams.register(self)

    @property
    def signature(self) -> tuple[str, ...]:
        """What makes two builds the same team: its supervisor and specialists (a factory building it
        again, as a restarted process or a replay does, replaces it; a different team is refused)."""
        return self.tree.signature()

    def close(self) -> None:
        """Forget this team in the process, so another team may take its name on its state store."""
        teams.unregister(self)

    # ------------------------------------------------------------------ building

    def _candidate_models(self, spec: Specialist[Any]) -> dict[str, Any]:
        return self.router.candidates(spec)

    def _build_agent(self, spec: Specialist[Any], path: str) -> Agent[RunDeps, Any]:
        agent_name = self.tree.agent_name(self.name, path)
        candidates = self._candidate_models(spec)
        default_id = next(iter(candidates))
        for mid, m in candidates.items():
            self._model_ids[id(m)] = mid
        observe = TracedObserverCapability if self._spans is not None else ObserverCapability
        # A durable recorded delegation in the run's workflow code stores its start before it runs
        # (`_delegate`), and with it the response that asked for it; a child workflow starts in
        # DBOS first, so a response asking for one is stored on its own, before.
        self_committing = frozenset(
            f'delegate_to_{m.name}'
            for m in self.tree.members.get(path, {}).values()
            if self.durable and self.record and not _needs_child_workflow(m)
        )
        capabilities: list[Any] = [
            observe(
                self.observers,
                self._model_ids,
                checkpoint=self._checkpoint,
                spans=self._spans,
                self_committing=self_committing,
            )
        ]
        if self.durable and self._dbos_capability(spec, path):
            _engine.rebuildable(agent_name)  # building this team again replaces its DBOS functions
            capabilities.append(durability(agent_name, candidates))
        tools: list[Any] = list(spec.tools)
        if path in self.tree.members:  # the supervisor, or a lead of a sub-team
            # In the agent's own toolset, beside its tools: pydantic-ai gathers over an agent's
            # toolsets in a task group at every step (their tools, their step contexts, their
            # instructions), in the caller's task for one toolset: 14 tasks fewer a K=1 run.
            tools += self._delegation_tools(path)
        if self.tracer_provider is not None and self._spans is None:
            settings = _setup.instrumentation_settings(self.tracer_provider)
            capabilities.append(Instrumentation(settings=settings))
        return Agent(
            candidates[default_id],
            name=agent_name,
            instructions=spec.instructions,
            tools=tools,
            toolsets=list(spec.toolsets),
            output_type=spec.output_type,
            deps_type=RunDeps,
            retries=spec.retries,
            model_settings=spec.model_settings,
            capabilities=capabilities,
        )

    def _dbos_capability(self, spec: Specialist[Any], path: str) -> bool:
        """Whether the agent of `spec` needs pydantic-ai's DBOS capability in a durable team: the
        supervisor, for its tools and its delegations that are child workflows; a specialist whose
        delegations are child workflows (`_needs_child_workflow`: MCP calls are steps, and so is the lead
        of such a member). Elsewhere it would add its per-request bookkeeping (~1 ms per run) for nothing."""
        if path != SUPERVISOR_PATH:
            return _needs_child_workflow(spec)
        return bool(spec.tools or spec.toolsets) or any(_needs_child_workflow(s) for s in self.specialists.values())

    def _delegation_tools(self, lead: str) -> list[Tool[RunDeps]]:
        """The `delegate_to_<member>` tools of the agent at path `lead` (the supervisor or a sub-team's lead)."""
        tools: list[Tool[RunDeps]] = []
        for spec in self.tree.members[lead].values():

            def make(specialist: str) -> Any:
                async def delegate(ctx: RunContext[RunDeps], subtask: str) -> str:
                    return await self._delegate(ctx, specialist, subtask)

                return delegate

            # Durable: a delegation runs in the run's workflow code, recovered from proctor's own
            # tables (recording, tool journal, approvals), unless it needs DBOS steps of its own
            # (`_needs_child_workflow`): then it is a DBOS child workflow with its own step history.
            child = self.durable and _needs_child_workflow(spec)
            tools.append(
                Tool(
                    make(spec.name),
                    name=f'delegate_to_{spec.name}',
                    description=f'Delegate one subtask to the {spec.name} specialist ({spec.summary}). '
                    'Returns its result.',
                    metadata={'dbos': {'child_workflow': {}}} if child else None,
                )
            )
        return tools

    # ------------------------------------------------------------------ running

    def _new_run_id(self) -> str:
        return uuid.uuid4().hex

    def _validate(self, task: Any, data_class: str, project: str) -> str:
        if not isinstance(task, str) or not task.strip():
            raise UserError('task is empty: give the team something to do')
        if len(task) > MAX_TASK_CHARS:
            raise UserError(f'task is {len(task)} characters, over the limit of {MAX_TASK_CHARS}')
        if data_class not in DATA_CLASSES:
            raise UserError(f'unknown data class {data_class!r} (one of {", ".join(DATA_CLASSES)})')
        if not isinstance(project, str) or not project.strip():
            raise UserError('project must be a non-empty name')
        return task

    async def _db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.store.call(fn, *args, **kwargs)

    async def run(
        self,
        task: str,
        *,
        project: str = 'default',
        data_class: str = 'internal',
        run_id: str | None = None,
    ) -> TeamResult[OutputT]:
        """Run the team on `task`; returns the final output, per-delegation results, usage and run id.

        Raises `UserError` for bad input before anything is recorded, and a `RunError` (budget,
        guardrail, approval, no route) or the model's own error when the run fails; the run's record
        keeps the status and error either way.

        A durable run given a `run_id` that is recorded already (its process was killed) is resumed,
        not started again: whoever holds a run id can always run the same call again, whether the
        killed process had recorded the run or not.
        """
        task = self._validate(task, data_class, project)
        if run_id is not None and self.durable and self.record:
            # Started before, by a process that stopped: continue that run (never start it twice).
            again = await self._db(_recorded_run, self.records, run_id, task)
            if again:
                return await self.resume(run_id)
        run_id = run_id or self._new_run_id()
        if self.record:
            await self._db(
                self.records.create_run,
                run_id=run_id,
                team=self.name,
                project=project,
                data_class=data_class,
                task=task,
                factory=self.factory,
                workspace=str(self.workspace.root) if self.workspace else None,
                durable=self.durable,
            )
        try:
            if self.durable:
                out = await self._run_durable(run_id, task, project, data_class)
            else:
                out = await self.execute(run_id, task, project, data_class)
        except BaseException as e:
            err = provider_error(e, run_id=run_id)  # a provider failure reads as a ProviderError (#20)
            if self.record and not _engine.lost_ownership(e):  # a process that took the run over writes it
                with anyio.CancelScope(shield=True):
                    status = 'cancelled' if isinstance(e, anyio.get_cancelled_exc_class()) else 'failed'
                    await self._db(self.records.set_status, run_id, status, error=failure_text(err or e, e)[:4000])
            if err is not None:
                raise err from e
            raise
        return self._result(run_id, out)

    def run_sync(self, task: str, **kwargs: Any) -> TeamResult[OutputT]:
        """`run` for scripts (starts its own event loop)."""

        async def go() -> TeamResult[OutputT]:
            return await self.run(task, **kwargs)

        return anyio.run(go)

    async def submit(
        self,
        task: str,
        *,
        project: str = 'default',
        data_class: str = 'internal',
        run_id: str | None = None,
        queue: str | None = None,
    ) -> str:
        """Put `task` on a queue that workers (`proctor worker`) drain; returns the run id at once.

        The run is recorded as `enqueued` with this team's `factory`, from which a worker rebuilds
        the team. Follow it with `await team.wait(run_id)` or `proctor runs show RUN --follow`.
        """
        from ..state import _queue

        task = self._validate(task, data_class, project)
        if not self.factory:
            raise UserError(
                f"team {self.name!r} has no factory: workers rebuild a submitted run's team from it "
                "(Team(..., factory='package.module:build_team'))"
            )
        if not (self.durable and self.record):
            raise UserError(f'team {self.name!r}: only durable, recorded teams (the default) can be submitted')
        ws = str(self.workspace.root) if self.workspace else None
        factory = _queue.normalize_factory(self.factory)
        return await self._db(
            lambda: _queue.submit_run(
                self.store,
                team=self.name,
                factory=factory,
                task=task,
                project=project,
                data_class=data_class,
                run_id=run_id or self._new_run_id(),
                queue=queue or _queue.RUN_QUEUE,
                workspace=ws,
            )
        )

    def submit_sync(self, task: str, **kwargs: Any) -> str:
        """`submit` for scripts (starts its own event loop)."""

        async def go() -> str:
            return await self.submit(task, **kwargs)

        return anyio.run(go)

    async def wait(self, run_id: str, *, timeout: float | None = None) -> TeamResult[OutputT]:
        """Wait for a submitted run to finish: its result, or a `RunError` with its error."""
        from ..state._queue import wait_for_run

        rec = await self.store.in_thread(wait_for_run, self.store, run_id, timeout=timeout)
        if rec.status != 'succeeded':
            raise RunError(f'run {rec.run_id} {rec.status}: {rec.error}', run_id=rec.run_id)
        return self._result(rec.run_id, {'output': rec.output})

    async def _run_durable(self, run_id: str, task: str, project: str, data_class: str) -> dict[str, Any]:
        if _engine.launched_url() != self.store.dbos_url:
            await anyio.to_thread.run_sync(_launch, self.store)
        assert self._checkpoint is not None  # durable
        # Its first execution: no recorded responses to serve, no earlier trace to continue.
        self._checkpoint.first.add(run_id)
        try:
            return await self._run_workflow(run_id, task, project, data_class)
        finally:
            self._checkpoint.first.discard(run_id)

    async def _run_workflow(self, run_id: str, task: str, project: str, data_class: str) -> dict[str, Any]:
        """Run the run's workflow in this task (DBOS records it as a workflow all the same): no task and
        no handle to wait on, and cancelling `team.run` cancels the run, which stays resumable."""
        from dbos import SetWorkflowID

        from ._workflow import team_run_workflow

        # By keyword: DBOS inspects the signature of a workflow called with positional arguments, on
        # every call (a check for an unregistered method), ~0.04 ms a run.
        with SetWorkflowID(run_id):
            return await team_run_workflow(
                team=self.name, run_id=run_id, task=task, project=project, data_class=data_class
            )

    async def _start_workflow(self, run_id: str, task: str, project: str, data_class: str) -> Any:
        from dbos import DBOS, SetWorkflowID

        from ._workflow import team_run_workflow

        with SetWorkflowID(run_id):
            return await DBOS.start_workflow_async(
                team_run_workflow, team=self.name, run_id=run_id, task=task, project=project, data_class=data_class
            )

    async def resume(self, run_id: str, *, force: bool = False) -> TeamResult[OutputT]:
        """Continue an interrupted durable run in this process: finished steps are not repeated.

        Refuses (`UserError`) a run that another live process (a worker, a `team.run`) is executing;
        `force=True` skips that check, for a holder that is gone but cannot be checked from here.
        """
        rec = await self._db(self.records.get, run_id, with_delegations=False)
        if rec.team != self.name:
            raise UserError(f'run {rec.run_id} belongs to team {rec.team!r}, not {self.name!r}')
        if rec.status == 'succeeded':
            return self._result(rec.run_id, {'output': rec.output})
        if not rec.durable:
            raise UserError(f'run {rec.run_id} was not durable (durable=False): it cannot be resumed')
        from dbos import DBOS

        await anyio.to_thread.run_sync(_launch, self.store)
        if not force:
            await anyio.to_thread.run_sync(self._refuse_if_held, rec.run_id)
        await self._db(self.records.set_status, rec.run_id, 'running')
        try:
            handle = await anyio.to_thread.run_sync(_engine.resume_run, rec.run_id)
            if handle is None:
                # Recorded, but its process died before starting the workflow: nothing ran yet.
                handle = await self._start_workflow(rec.run_id, rec.task, rec.project, rec.data_class)
            else:
                handle = await DBOS.retrieve_workflow_async(rec.run_id)
            out = await handle.get_result()
        except BaseException as e:
            if _engine.lost_ownership(e):
                raise
            err = provider_error(e, run_id=rec.run_id)
            with anyio.CancelScope(shield=True):
                await self._db(self.records.set_status, rec.run_id, 'failed', error=failure_text(err or e, e)[:4000])
            if err is not None:
                raise err from e
            raise
        return self._result(rec.run_id, out)

    def _refuse_if_held(self, run_id: str) -> None:
        held = _engine.live_holder(self.store, run_id)
        if held is None:
            return
        what, certain = held
        if certain:
            raise UserError(f'run {run_id} is running in {what}: resume it only if that process stops')
        raise UserError(
            f'run {run_id} is held by {what}, which cannot be checked from here: '
            'if it has stopped, resume with force (proctor resume --force)'
        )

    def _result(self, run_id: str, out: dict[str, Any]) -> TeamResult[OutputT]:
        rec: RunRecord | None = self.records.get(run_id) if self.record else None
        if rec is None:
            return TeamResult(
                run_id=run_id,
                output=out['output'],
                delegations=out.get('delegations', []),
                usage=out.get('usage', RunUsage()),
                cost_usd=0.0,
                state_dir=self.store.state_dir,
            )
        return TeamResult(
            run_id=run_id,
            output=out['output'],
            delegations=[DelegationResult.from_record(d) for d in rec.delegations],
            usage=RunUsage(input_tokens=rec.input_tokens, output_tokens=rec.output_tokens, requests=rec.requests),
            cost_usd=rec.cost_usd,
            state_dir=self.store.state_dir,
            status=rec.status,
        )

    def _guard(self, hook: Hook, payload: Any, deps: RunDeps, *, tool: str | None = None) -> Any:
        if not self.guardrails.has(hook):
            return payload
        ctx = GuardContext(
            hook=hook,
            run_id=deps.run_id,
            agent_path=deps.agent_path,
            specialist=deps.specialist,
            data_class=deps.data_class,
            tool=tool,
        )
        return apply_guardrails(self.guardrails, hook, payload, ctx, store=self.store if self.record else None).payload

    def _route(self, spec: Specialist[Any], deps: RunDeps) -> Route:
        return self.router.route(spec, data_class=deps.data_class, project=deps.project, team=self.name)

    def scope(self) -> RunScope:
        """What the tools and memory of this team's runs may reach (`proctor.state.current_scope`)."""
        return RunScope(
            team=self.name,
            store=self.store,
            record=self.record,
            guardrails=self.guardrails,
            registry=getattr(self.router, 'registry', None),
        )

    async def execute(self, run_id: str, task: str, project: str, data_class: str) -> dict[str, Any]:
        """The body of a run (the workflow's code when durable): `team.run` and the run workflows call it."""
        try:
            with run_scope(self.scope()):
                return await self._execute_once(run_id, task, project, data_class)
        finally:
            if self._checkpoint is not None:
                self._checkpoint.forget(run_id)  # a later execution reads the recording again

    async def _execute_once(self, run_id: str, task: str, project: str, data_class: str) -> dict[str, Any]:
        deps = RunDeps(
            run_id=run_id,
            team=self.name,
            project=project,
            data_class=data_class,
            agent_path='supervisor',
            specialist=self.supervisor.name,
            workspace=str(self.workspace.root) if self.workspace else None,
        )
        task = self._guard('input', task, deps)
        route = self._route(self.supervisor, deps)
        deps = RunDeps(**{**deps.__dict__, 'model_id': route.model_id})
        agent = self._agents[SUPERVISOR_PATH]
        started = time.perf_counter()
        emit(
            self.observers,
            RunEvent(
                'run_started',
                run_id,
                deps.agent_path,
                deps.specialist,
                subtask=task,
                model_id=route.model_id,
                route_reason=route.reason,
            ),
        )
        # A workflow body that runs again (recovery, resume) continues the run's first trace.
        resumed_from = None
        if self._checkpoint is not None and self.tracer_provider is not None and run_id not in self._checkpoint.first:
            resumed_from = await self._db(_continuity.trace_parent, self.tracer_provider, self.store, run_id)
        try:
            with self.tracer.start_as_current_span(
                'team.run',
                context=resumed_from,
                attributes={
                    'proctor.run_id': run_id,
                    'proctor.team': self.name,
                    'proctor.project': project,
                    'proctor.data_class': data_class,
                    'proctor.model_id': route.model_id,
                    'proctor.route_reason': route.reason,
                    'proctor.resumed': resumed_from is not None,
                },
            ) as span:
                # also records the run's trace id
                _continuity.anchor_run(self.tracer_provider, self.store, run_id, span)
                result = await agent.run(task, deps=deps, model=route.model_key)
                output = self._guard('output', result.output, deps)
                span.set_attributes(_usage_attributes(result.usage, route))
        except BaseException as e:
            emit(
                self.observers,
                RunEvent(
                    'run_failed',
                    run_id,
                    deps.agent_path,
                    deps.specialist,
                    error=f'{type(e).__name__}: {e}',
                    elapsed_s=time.perf_counter() - started,
                ),
            )
            await _setup.settle(self.store)
            raise
        usage = result.usage
        if self.record:  # written with the run's other rows (and its final answer) by the `settle` below
            self._finish_run(run_id, output, usage, route)
        emit(
            self.observers,
            RunEvent(
                'run_finished',
                run_id,
                deps.agent_path,
                deps.specialist,
                output=output,
                model_id=route.model_id,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                elapsed_s=time.perf_counter() - started,
            ),
        )
        await _setup.settle(self.store)  # the run's recordings, audit records and trace, before it returns
        return {'output': output, 'usage': usage}

    def _finish_run(self, run_id: str, output: Any, usage: RunUsage, route: Route) -> None:
        self.records.queue_finish_run(
            run_id,
            output=output,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            requests=usage.requests,
            cost_usd=route.cost(usage),
            add_delegations=True,
        )

    async def _delegate(self, ctx: RunContext[RunDeps], specialist: str, subtask: str) -> str:
        """Run `specialist` on `subtask` for the agent whose context is `ctx` (the delegation tool's body):
        the supervisor or a sub-team's lead, `specialist` one of its members."""
        parent = ctx.deps
        spec = self.tree.members.get(parent.agent_path, {}).get(specialist)
        if spec is None:  # pragma: no cover - tools exist only for known members
            raise RunError(f'unknown specialist {specialist!r} under {parent.agent_path}', run_id=parent.run_id)
        delegation_id = parent.delegation_id_of(specialist, ctx.tool_call_id)
        if self._checkpoint is not None and self.record:
            # Finished in an earlier execution of the run: served from its record, not run again.
            done = await self._checkpoint.finished_delegation(parent, delegation_id, spec.output_type)
            if done is not None:
                return done
        # A child workflow's recovery does not run this body again once the workflow has completed;
        # a delegation in the run's own workflow code is run again by the run's recovery.
        own_workflow = self.durable and _needs_child_workflow(spec)
        deps = parent.child(specialist, delegation_id=delegation_id)
        subtask = self._guard('input', subtask, deps)
        route = self._route(spec, deps)
        deps = RunDeps(**{**deps.__dict__, 'model_id': route.model_id})
        if self.record:
            row = dict(
                delegation_id=delegation_id,
                run_id=parent.run_id,
                agent_path=deps.agent_path,
                specialist=specialist,
                subtask=subtask,
                model_id=route.model_id,
                route_reason=route.reason,
            )
            self.records.queue_start_delegation(**row)  # written with the run's other rows, in order
            if self._checkpoint is not None:
                # Stored before it runs: after a crash `proctor runs show` names what was running. A
                # group commit: the delegations the same response started are stored in one transaction.
                await self._checkpoint.commit()
        started = time.perf_counter()
        emit(
            self.observers,
            RunEvent(
                'delegation_started',
                parent.run_id,
                deps.agent_path,
                specialist,
                subtask=subtask,
                model_id=route.model_id,
                route_reason=route.reason,
            ),
        )
        resumed_from = None
        if (
            self.durable
            and self.tracer_provider is not None
            and not otel_trace.get_current_span().get_span_context().is_valid
        ):
            # A child workflow recovered on its own has no span around it: continue the run's trace.
            resumed_from = await self._db(_continuity.trace_parent, self.tracer_provider, self.store, parent.run_id)
        try:
            with self.tracer.start_as_current_span(
                f'delegate {specialist}',
                context=resumed_from,
                attributes={
                    'proctor.run_id': parent.run_id,
                    'proctor.agent_path': deps.agent_path,
                    'proctor.specialist': specialist,
                    'proctor.subtask': subtask[:1000],
                    'proctor.model_id': route.model_id,
                    'proctor.route_reason': route.reason,
                    'proctor.delegation_id': delegation_id,
                    'proctor.project': deps.project,
                    'proctor.data_class': deps.data_class,
                    'proctor.resumed': resumed_from is not None,
                },
            ) as span:
                with _engine.delegation_in_parent_workflow() if self.durable and not own_workflow else nullcontext():
                    result = await self._agents[deps.agent_path].run(subtask, deps=deps, model=route.model_key)
                output = self._guard('output', result.output, deps)
                span.set_attributes(_usage_attributes(result.usage, route))
        except BaseException as e:
            emit(
                self.observers,
                RunEvent(
                    'delegation_failed',
                    parent.run_id,
                    deps.agent_path,
                    specialist,
                    subtask=subtask,
                    model_id=route.model_id,
                    error=f'{type(e).__name__}: {e}',
                    elapsed_s=time.perf_counter() - started,
                ),
            )
            if self.record and not _engine.lost_ownership(e):  # a process that took the run over writes it
                self.records.queue_finish_delegation(
                    delegation_id, status='failed', error=f'{type(e).__name__}: {e}'[:2000]
                )
            if own_workflow:
                await _setup.settle(self.store)
            raise
        usage = result.usage
        served = _served_model(result.new_messages(), route.model_id)
        if self.record:  # queued: written in one transaction with its final answer, never before it
            self.records.queue_finish_delegation(
                delegation_id,
                status='succeeded',
                output=output,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                requests=usage.requests,
                cost_usd=route.cost(usage),
                model_id=served,
            )
        if own_workflow:  # its recordings and audit records, before its workflow completes (else the run's end does)
            await _setup.settle(self.store)
        emit(
            self.observers,
            RunEvent(
                'delegation_finished',
                parent.run_id,
                deps.agent_path,
                specialist,
                subtask=subtask,
                model_id=served,
                output=output,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                elapsed_s=time.perf_counter() - started,
            ),
        )
        return _text_of(output)

    # ------------------------------------------------------------------ reading

    def get_run(self, run_id: str) -> RunRecord:
        return self.records.get(run_id)

    def list_runs(self, *, limit: int = 50) -> list[RunRecord]:
        return self.records.list(limit=limit, team=self.name)
