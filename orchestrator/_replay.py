"""Replay a recorded run with no live model calls and no side effects; fork it at a step and diff.

```python
from proctor import replay_sync
from proctor.tracing import Recording

# once: save a production run as a fixture
Recording.from_store(StateStore('prod-state'), run_id).save('tests/recordings/checkout.json')

# a regression test: today's team, yesterday's model responses and tool results
def test_checkout_run_still_replays():
    report = replay_sync('tests/recordings/checkout.json', team=build_team())
    assert report.ok, report.summary()
```

Replay rebuilds the team (the given one, or the run's recorded factory) as a throwaway copy:
non-durable, untraced, in a scratch state directory that is deleted afterwards, with every agent's
model replaced by a `ReplayModel` (the recorded response of each step) and every tool except the
delegations replaced by its recorded result (`ReplayToolset`). Delegations, guardrails and output
validation run for real, so a code change that alters them shows up as a divergence. A step with no
recording raises `MissingRecording` naming it.

A fork (`fork_at=`) replays every step before the fork step and runs that step and what depends on
it (later steps of the same agent, of the agents above it, and any new delegation) live, on the
original models or the ones in `models=`; live tool calls act on a scratch copy of the workspace.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import anyio
from pydantic_ai.models import Model

from ..exceptions import MissingRecording, ReplayDivergence, RunError, UserError, WorkspaceError
from ..models._routing import Route
from ..state._store import StateStore
from ..state._writer import flusher
from ..tools._files import write_file
from ..tools._workspace import Workspace
from ..tracing._compare import Divergence, ForkDiff, divergences, fork_diff, input_changes
from ..tracing._recording import WORKSPACE_STEP, RecordedStep, Recording, restore_workspace
from ..tracing._replay_model import Fork, ReplayGate, ReplayModel, ReplayRouter, ReplaySession, StepMarker, replay_spec
from ._live import load_factory, teams
from ._recorded_team import RecordedTeam, recorded_team
from ._team import Team

__all__ = ('replay', 'replay_sync', 'ReplayReport')


def _redo_write(workspace: str, args: dict[str, Any], result: Any) -> None:
    """proctor's `write_file`, done again in the replay's scratch copy of the workspace when the recorded
    call wrote: later instructions that read the file see what they saw in the recorded run."""
    if not str(result).startswith('wrote '):
        return
    try:
        Workspace.open(workspace).write_text(str(args.get('path', '')), str(args.get('content', '')))
    except (WorkspaceError, OSError):
        pass  # the recorded call failed the same way, or the file is not ours to restore


@dataclass
class ReplayReport:
    """What a replay found. `ok`: it followed the recorded run exactly (for a fork: it finished)."""

    run_id: str
    replay_run_id: str | None
    ok: bool
    divergences: list[Divergence]
    status: str
    output: Any
    error: str | None
    replayed_model_calls: int
    live_model_calls: int
    replayed_tool_calls: int
    live_tool_calls: int
    fork_at: str | None = None
    diff: ForkDiff | None = None
    steps: list[str] = field(default_factory=list)  # the recorded model steps, in order (fork points)
    input_changes: list[Divergence] = field(default_factory=list)  # asked otherwise, answered from the recording
    notes: list[str] = field(default_factory=list)  # how the replay was made (e.g. a team rebuilt from the recording)

    def summary(self) -> str:
        head = (
            f'replay of {self.run_id}: {self.status}, {self.replayed_model_calls} model calls replayed, '
            f'{self.live_model_calls} live'
        )
        if self.fork_at is None:
            head += ', ' + ('no divergence' if not self.divergences else f'{len(self.divergences)} divergence(s)')
        notes = [
            f'  note: model input changed at {d.step}: expected {d.expected}, got {d.got}' for d in self.input_changes
        ]
        notes += [f'  note: {n}' for n in self.notes]
        return '\n'.join([head, *(f'  {d}' for d in self.divergences), *notes])

    def raise_for_divergence(self) -> None:
        """Raise `ReplayDivergence` for the first divergence, if any."""
        if self.divergences:
            d = self.divergences[0]
            raise ReplayDivergence(step=d.step, expected=d.expected, got=d.got, run_id=self.run_id)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d['diff'] = self.diff.to_json() if self.diff else None
        return d


def _pick_fork(rec: Recording, fork_at: str | int) -> Fork:
    models = [s for s in rec.steps if s.kind == 'model']
    if isinstance(fork_at, int) or str(fork_at).isdigit():
        n = int(fork_at)
        if not 1 <= n <= len(models):
            raise UserError(f'--fork-at {n}: run {rec.run_id} has model steps 1..{len(models)}')
        step = models[n - 1]
    else:
        step = next((s for s in models if s.step == fork_at), None)  # type: ignore[assignment]
        if step is None:
            known = ', '.join(s.step for s in models[:6])
            raise UserError(f'--fork-at {fork_at!r}: no such model step in run {rec.run_id} (steps: {known}…)')
    return Fork(step, step.scope, step.index or 1)


def _registry_model(team: Team, model_id: str) -> Model | None:
    registry = getattr(team.router, 'registry', None)
    if registry is not None and model_id in registry:
        return registry.model(model_id)
    return None


def _price(team: Team, model_id: str) -> tuple[float, float] | None:
    registry = getattr(team.router, 'registry', None)
    if registry is not None and model_id in registry:
        info = registry.get(model_id)
        return info.usd_per_m_input, info.usd_per_m_output
    return None


def _original_model(team: Team, spec: Any, rec: Recording) -> tuple[Model | None, Route]:
    """The model a fork continues on for `spec` (its route's model today) and that route."""
    route: Route | None = None
    try:
        route = team.router.route(spec, data_class=rec.data_class, project=rec.project, team=team.name)
    except Exception:
        route = None
    model = None
    if route is not None:
        model = _registry_model(team, route.model_id) or route.model
    if model is None:
        try:
            model = next(iter(team.router.candidates(spec).values()), None)
        except Exception:
            model = None
    if route is None:
        recorded = next(
            (
                str(s.payload.get('model_id'))
                for s in rec.steps
                if s.kind == 'model' and s.payload.get('specialist') == spec.name
            ),
            None,
        )
        route = Route(model_id=recorded or spec.name, model=None, reason='replay')
    return model, route


def _resolve_model(team: Team, value: Any) -> tuple[str, Model]:
    """A `--model` value: a registry id of the team's router, a model string, or a `Model`."""
    from ..models._models import build_model, model_id_of

    if isinstance(value, str):
        model = _registry_model(team, value)
        if model is not None:
            return value, model
    return model_id_of(value), build_model(value)


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kind):
            return e
        stack.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        stack.extend(getattr(e, 'exceptions', ()))
    return None


def _load(run: str | Path | Recording, state_dir: Any, database_url: str | None) -> Recording:
    if isinstance(run, Recording):
        return run
    if isinstance(run, Path) or str(run).endswith('.json'):
        return Recording.from_file(run)
    return Recording.from_store(StateStore(state_dir, database_url=database_url), str(run))


async def replay(
    run: str | Path | Recording,
    *,
    team: Team | str | None = None,
    state_dir: Any = None,
    database_url: str | None = None,
    fork_at: str | int | None = None,
    models: Mapping[str, Any] | None = None,
) -> ReplayReport:
    """Replay run `run` (an id or unique prefix in `state_dir`'s store, a saved recording file, or a
    `Recording`) and compare it with the recording.

    `team`: the team to replay (a `Team` or a factory 'module:callable'); default: the run's recorded
    factory. `fork_at`: a model step id or its 1-based number in recording order; from there on the
    run goes live on the original models, or `models={'coding': 'local:smollm2', ...}` (ids, model
    strings or `Model`s; only with `fork_at`). Raises `MissingRecording` (a step with no recording),
    `UnknownRunError`, or `UserError` for bad arguments.
    """
    rec = await anyio.to_thread.run_sync(_load, run, state_dir, database_url)
    if models and fork_at is None:
        raise UserError('--model needs --fork-at: a plain replay makes no live calls')
    if isinstance(team, str):
        team = load_factory(team)
    notes: list[str] = []
    if team is None:
        if rec.factory:
            team = await anyio.to_thread.run_sync(load_factory, rec.factory)
        else:  # a run started from a script: the recording is enough for a replay, or says what it lacks
            recorded = recorded_team(rec)
            notes = list(recorded.notes)
            team = cast(Team, recorded)  # it has what replay reads of a team
    assert isinstance(team, (Team, RecordedTeam))  # load_factory returns only registered teams
    agents = {a.name: a for a in team.tree.specs.values()}  # every level of a nested team
    for name in models or {}:
        if name not in agents:
            raise UserError(
                f'--model {name}=...: team {team.name!r} has no agent {name!r} (agents: {", ".join(agents)})'
            )
    fork = _pick_fork(rec, fork_at) if fork_at is not None else None
    session = ReplaySession(rec, fork, redo={write_file: _redo_write})
    replay_models: dict[str, ReplayModel] = {}
    routes: dict[str, Route] = {}
    prices: dict[str, tuple[float, float]] = {}
    for name, spec in agents.items():
        live, route = _original_model(team, spec, rec)
        prices[route.model_id] = _price(team, route.model_id) or (route.usd_per_m_input, route.usd_per_m_output)
        model_id = route.model_id
        if models and name in models:
            model_id, live = _resolve_model(team, models[name])
            route = Route(model_id=model_id, model=None, reason=f'fork: --model {name}={model_id}')
            if (p := _price(team, model_id)) is not None:
                prices[model_id] = p
                route = replace(route, usd_per_m_input=p[0], usd_per_m_output=p[1])
        if live is None:
            from pydantic_ai.models.function import FunctionModel

            def no_live(*_: Any, _name: str = name) -> Any:
                raise RunError(f'agent {_name!r} has no model to continue live: pass --model {_name}=MODEL')

            live = FunctionModel(no_live, model_name=f'no-live-model:{name}')
        replay_models[name] = ReplayModel(session, live, model_id)
        routes[name] = route

    scratch = Path(tempfile.mkdtemp(prefix='proctor-replay-'))
    workspace = None
    if team.workspace is not None:  # a copy: instructions may read it, a fork's live tools may write it
        workspace = scratch / 'workspace'
        ignore = shutil.ignore_patterns('.git', '.venv', 'node_modules', '__pycache__', '.proctor')
        source = team.workspace.root
        await anyio.to_thread.run_sync(lambda: shutil.copytree(source, workspace, ignore=ignore))
        snapshot = next((s for s in rec.steps if s.step == WORKSPACE_STEP), None)
        if snapshot is not None:  # the files as the run found them, not as it left them
            await anyio.to_thread.run_sync(restore_workspace, snapshot.payload, workspace)
    elif notes and (snapshot := next((s for s in rec.steps if s.step == WORKSPACE_STEP), None)) is not None:
        workspace = scratch / 'workspace'  # a team rebuilt from its recording: the recorded files
        workspace.mkdir()
        await anyio.to_thread.run_sync(restore_workspace, snapshot.payload, workspace)
    clone = Team(
        replay_spec(team.supervisor, session),
        [replay_spec(s, session) for s in team.specialists.values()],
        name=f'{team.name}~replay-{uuid.uuid4().hex[:8]}',
        workspace=workspace,
        state_dir=scratch / 'state',
        # always a scratch SQLite file, even when $PROCTOR_DATABASE_URL names the real (Postgres) store
        database_url=f'sqlite:///{scratch / "state" / "proctor.db"}',
        durable=False,
        guardrails=team.guardrails,
        router=ReplayRouter(replay_models, routes),  # type: ignore[arg-type]
        observers=[StepMarker(session)],
        trace=False,
        max_depth=team.max_depth,
    )
    for o in clone.observers:  # approval checkpoints (the guardrails' observer) do not wait in a replay
        if hasattr(o, 'gate'):
            setattr(o, 'gate', ReplayGate())  # noqa: B010 - any observer with a gate, not one class
    try:
        status, output, error, replay_run_id = 'succeeded', None, None, None
        try:
            result = await clone.run(rec.task, project=rec.project, data_class=rec.data_class)
            output, replay_run_id = result.output, result.run_id
        except Exception as e:
            missing = _find(e, MissingRecording)
            if missing is not None:
                raise missing from None
            status, error = 'failed', f'{type(e).__name__}: {e}'[:2000]
            runs = await anyio.to_thread.run_sync(lambda: clone.list_runs(limit=1))
            replay_run_id = runs[0].run_id if runs else None
        got = (
            await anyio.to_thread.run_sync(Recording.from_store, clone.store, replay_run_id) if replay_run_id else None
        )
    finally:
        teams.unregister(clone)

        def cleanup() -> None:
            flusher.flush_store(clone.store)  # nothing of the clone may be left to write once its store is gone
            clone.store.dispose()
            shutil.rmtree(scratch, ignore_errors=True)

        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(cleanup)
    if got is None:  # pragma: no cover - the run row is written before anything can fail
        got = Recording(
            run_id='',
            team=clone.name,
            project=rec.project,
            data_class=rec.data_class,
            task=rec.task,
            status=status,
            error=error,
        )
    got.status, got.error = status, error if status == 'failed' else got.error

    diff = None
    changed: list[Divergence] = []
    if fork is None:
        if notes:  # rebuilt from the recording: no guardrails ran, and the instructions are not the recorded ones
            got.guard_decisions = list(rec.guard_decisions)
        found = divergences(rec, got)
        changed = [] if notes else input_changes(rec, got)
    else:
        found = []

        def cost_of(step: RecordedStep) -> float | None:
            response = step.response()
            served = ((response.metadata or {}).get('proctor') or {}).get('model_id') or str(
                step.payload.get('model_id')
            )
            p = prices.get(served) or _price(team, served)
            if p is None:
                return None
            return (response.usage.input_tokens * p[0] + response.usage.output_tokens * p[1]) / 1e6

        diff = fork_diff(rec, got, fork_at=fork.step.step, live_steps=list(session.live_steps), cost_of=cost_of)
    c = session.counts
    return ReplayReport(
        run_id=rec.run_id,
        replay_run_id=replay_run_id,
        ok=not found and (fork is None or status == 'succeeded'),
        divergences=found,
        status=status,
        output=output if status == 'succeeded' else None,
        error=error,
        replayed_model_calls=c['replayed_model'],
        live_model_calls=c['live_model'],
        replayed_tool_calls=c['replayed_tool'],
        live_tool_calls=c['live_tool'],
        fork_at=fork.step.step if fork else None,
        diff=diff,
        steps=[s.step for s in rec.steps if s.kind == 'model'],
        input_changes=changed,
        notes=notes,
    )


def replay_sync(run: str | Path | Recording, **kwargs: Any) -> ReplayReport:
    """`replay` for scripts and plain (non-async) tests."""
    return anyio.run(lambda: replay(run, **kwargs))
