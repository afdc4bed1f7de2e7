"""The pieces replay swaps into a team: a model answering from the recording, toolsets returning
recorded results, and the fork rule deciding which steps run live instead."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

from pydantic_ai.exceptions import ModelRetry
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.models import Model
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.toolsets import FunctionToolset
from pydantic_ai.toolsets.wrapper import WrapperToolset

from ..core._events import ModelCall, OutputCall, RunObserver, ToolCall
from ..exceptions import MissingRecording, RunError
from ..models._routing import Route
from ._recording import DELEGATE_PREFIX, RecordedStep, Recording, step_id, step_scope, tool_step_id

__all__ = (
    'ReplayGate',
    'ReplayModel',
    'ReplayToolset',
    'ReplaySession',
    'Fork',
    'StepMarker',
    'ReplayRouter',
    'replay_spec',
    'Redo',
)

#: Repeats a tool's effect on the replay's workspace: (workspace, the call's args, its recorded result).
Redo = Callable[[str, dict[str, Any], Any], None]

_step: ContextVar[str | None] = ContextVar('proctor_replay_step', default=None)


@dataclass
class Fork:
    """Where a fork leaves the recording: a model step (its agent run's scope and request number)."""

    step: RecordedStep
    scope: str
    index: int


def _above(scope: str, fork_scope: str) -> bool:
    """Whether agent run `scope` delegated, directly or through its members, to agent run `fork_scope`:
    the supervisor is above every delegation, a lead above its members' (`supervisor>coding:c1` is
    above `supervisor>coding:c1>tester:c2`: a delegation's scope extends its lead's)."""
    return scope != fork_scope and (scope == 'supervisor' or fork_scope.startswith(scope + '>'))


class ReplaySession:
    """The recording being replayed and the fork rule, shared by the replay models and toolsets."""

    def __init__(self, rec: Recording, fork: Fork | None, *, redo: Mapping[Any, Redo] | None = None) -> None:
        self.rec = rec
        # Tool functions whose effect on the workspace a replay repeats (from a recorded call that
        # succeeded): later instructions that read the files see what the recorded run saw.
        self.redo: Mapping[Any, Redo] = redo or {}
        self.by_step = rec.by_step()
        self.scopes = {s.scope for s in rec.steps}
        self.fork = fork
        self.call_source: dict[str, str] = {}  # tool step -> 'replayed' | 'live': which response asked for it
        self.live_scopes: set[str] = set()  # delegations a live response started
        self.live_steps: list[str] = []
        self.model_of_step: dict[str, str] = {}
        self.counts = {'replayed_model': 0, 'live_model': 0, 'replayed_tool': 0, 'live_tool': 0}

    def live(self, step: str) -> bool:
        """Whether model step `step` runs live (fork rule); raises `MissingRecording` when it must replay."""
        scope, _, tail = step.rpartition('#')
        rec = self.by_step.get(step)
        if self.fork is not None:
            f = self.fork
            index = int(tail[6:]) if tail.startswith('model:') and tail[6:].isdigit() else 0
            if scope == f.scope:
                return index >= f.index
            if scope in self.live_scopes or (rec is None and scope not in self.scopes):
                return True  # a delegation a live step started
            if _above(scope, f.scope) and (rec is None or rec.seq > f.step.seq):
                return True
        if rec is None or rec.kind not in ('model', 'model_error'):
            raise MissingRecording(step, run_id=self.rec.run_id)
        return False

    def note_response(self, step: str, response: ModelResponse, *, live: bool) -> None:
        scope, _, tail = step.rpartition('#')
        n = tail.removeprefix('model:')
        for part in response.parts:
            if isinstance(part, ToolCallPart):
                self.call_source[f'{scope}#tool:{part.tool_call_id}@{n}'] = 'live' if live else 'replayed'
                if live and part.tool_name.startswith(DELEGATE_PREFIX):
                    # its scope may reuse a recorded call id (scripted models count from 1): still live
                    self.live_scopes.add(f'{scope}>{part.tool_name[len(DELEGATE_PREFIX) :]}:{part.tool_call_id}')


class ReplayModel(WrapperModel):
    """Answers each model request with the recorded response of its step; live (through the wrapped
    model) only on the steps a fork runs live. It never streams."""

    def __init__(self, session: ReplaySession, live: Model, model_id: str) -> None:
        super().__init__(live)
        self._session = session
        self.proctor_id = model_id

    async def request(self, messages: Any, model_settings: Any, model_request_parameters: Any) -> ModelResponse:
        step = _step.get()
        if step is None:  # pragma: no cover - the step marker runs before every request
            raise MissingRecording('(unknown step)', run_id=self._session.rec.run_id)
        s = self._session
        if s.live(step):
            s.counts['live_model'] += 1
            s.live_steps.append(step)
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
            s.note_response(step, response, live=True)
            return response
        rec = s.by_step[step]
        if rec.kind == 'model_error':
            raise RunError(f'recorded model failure at step {step}: {rec.payload.get("error")}', run_id=s.rec.run_id)
        s.counts['replayed_model'] += 1
        s.model_of_step[step] = str(rec.payload.get('model_id'))
        response = rec.response()
        s.note_response(step, response, live=False)
        return response

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise RunError('replay does not stream: run the team with agent.run')


class ReplayToolset(WrapperToolset[Any]):
    """Returns each tool call's recorded result (or raises its recorded `ModelRetry`) instead of
    running the tool; runs it only for calls a live fork step made."""

    def __init__(self, wrapped: Any, session: ReplaySession) -> None:
        super().__init__(wrapped)
        self._session = session

    async def call_tool(self, name: str, tool_args: dict[str, Any], ctx: Any, tool: Any) -> Any:
        s = self._session
        step = f'{step_scope(ctx.deps)}#tool:{ctx.tool_call_id}@{ctx.run_step}'
        rec = s.by_step.get(step)
        if s.call_source.get(step) == 'live':
            s.counts['live_tool'] += 1
            return await super().call_tool(name, tool_args, ctx, tool)
        if rec is None or rec.kind not in ('tool', 'tool_error'):
            raise MissingRecording(step, run_id=s.rec.run_id)
        s.counts['replayed_tool'] += 1
        if rec.kind == 'tool_error':
            if rec.payload.get('retry'):
                raise ModelRetry(rec.payload.get('message') or '')
            raise RunError(
                f'recorded tool failure at step {step}: {rec.payload.get("error_type")}: {rec.payload.get("message")}',
                run_id=s.rec.run_id,
            )
        result = rec.payload.get('result')
        redo = self._redo_of(name)
        if redo is not None and ctx.deps.workspace:
            redo(ctx.deps.workspace, tool_args, result)
        return result

    def _redo_of(self, name: str) -> Redo | None:
        tools = getattr(self.wrapped, 'tools', None)
        t = tools.get(name) if isinstance(tools, dict) else None
        return self._session.redo.get(getattr(t, 'function', None)) if t is not None else None


class ReplayGate:
    """Stands in for the approval gate in a replay: nobody is asked again. The recorded tool outcome
    already says what the decision led to (the result, the denial the model was told, or the stop)."""

    async def decide(self, req: Any) -> Any:
        return SimpleNamespace(
            status='approved',
            approval_id=f'replay:{req.key}',
            pending=False,
            decider='replay',
            reason='replayed from the recording',
        )


class StepMarker(RunObserver):
    """Tells the replay models which step they answer (this hook runs just before each request), and
    returns output functions' recorded results instead of running them again."""

    def __init__(self, session: ReplaySession) -> None:
        self.session = session

    async def before_model_call(self, call: ModelCall) -> None:
        _step.set(step_id(call.deps, call.key))

    async def before_tool_call(self, call: ToolCall) -> dict[str, Any]:
        # A delegation is a recorded tool call too (its specialist's steps replay under it): count it
        # with the others, as replayed, or live when a live response asked for it.
        if call.tool.startswith(DELEGATE_PREFIX):
            source = self.session.call_source.get(tool_step_id(call), 'replayed')
            self.session.counts['live_tool' if source == 'live' else 'replayed_tool'] += 1
        return call.args

    async def process_output(self, call: OutputCall, proceed: Callable[[], Awaitable[Any]]) -> Any:
        s = self.session
        step = step_id(call.deps, call.key)
        scope, _, tail = step.rpartition('#')
        if f'{scope}#model:{tail.removeprefix("output:")}' in s.live_steps:
            return await proceed()  # the output of a live response: its function runs for real
        rec = s.by_step.get(step)
        if rec is None or not rec.kind.startswith('output'):
            raise MissingRecording(step, run_id=s.rec.run_id)
        if rec.kind == 'output_retry':
            raise ModelRetry(rec.payload.get('message') or '')
        if rec.kind == 'output_error':
            raise RunError(f'recorded output failure at step {step}: {rec.payload.get("message")}', run_id=s.rec.run_id)
        return rec.output()


class ReplayRouter:
    """Serves every agent on its `ReplayModel`, with the original route's id, reason and prices."""

    def __init__(self, models: dict[str, ReplayModel], routes: dict[str, Route]) -> None:
        self.models = models
        self.routes = routes

    def candidates(self, spec: Any) -> dict[str, Model]:
        m = self.models[spec.name]
        return {m.proctor_id: m}

    def route(self, spec: Any, *, data_class: str, project: str, team: str) -> Route:
        m, r = self.models[spec.name], self.routes[spec.name]
        return Route(
            model_id=m.proctor_id,
            model=None,
            reason=r.reason,
            usd_per_m_input=r.usd_per_m_input,
            usd_per_m_output=r.usd_per_m_output,
        )


def replay_spec(spec: Any, session: ReplaySession) -> Any:
    toolsets = (
        [ReplayToolset(FunctionToolset(list(spec.tools), max_retries=spec.retries), session)] if spec.tools else []
    )
    toolsets += [ReplayToolset(ts, session) for ts in spec.toolsets]
    members = tuple(replay_spec(m, session) for m in spec.team)  # a lead's sub-team, replayed the same way
    return replace(spec, tools=(), toolsets=tuple(toolsets), team=members)
