"""Recording a run for replay: every model response and tool result, keyed by a stable step id.

Step ids name a step the same way in the recorded run and in any replay of it:

- `<scope>#model:<n>`: the n-th model request of an agent run,
- `<scope>#tool:<tool call id>@<n>`: a tool call the n-th response asked for (a
  `delegate_to_<specialist>` call is a delegation),
- `<scope>#output:<n>`: the output function run on the n-th response's output,

where `<scope>` is `supervisor` for the supervisor's run and `supervisor>coding:<tool call id>` for
a delegation (its delegation id without the run id). In a durable run the hooks run again on
recovery; rows are keyed by (run, step), so re-recording a step is a no-op.

`Recording` is everything replay needs, loaded from the state store or from a JSON file
(`Recording.save(path)`): check one into your tests and `replay` it to catch behaviour changes.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from pydantic import BaseModel
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry, ToolRetryError
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest, ModelResponse
from pydantic_core import to_jsonable_python

from ..core._deps import RunDeps
from ..core._events import ModelCall, OutputCall, RunEvent, RunObserver, ToolCall
from ..exceptions import UserError
from ..state import _sql
from ..state._schema import guard_events, recordings
from ..state._store import StateStore
from ..state._writer import BufferedWriter, flusher

__all__ = (
    'Recorder',
    'ResponseRecorder',
    'Recording',
    'RecordedStep',
    'snapshot_workspace',
    'restore_workspace',
    'WORKSPACE_STEP',
    'step_scope',
    'step_id',
    'tool_step_id',
    'messages_hash',
    'input_hash',
    'input_tail',
    'DELEGATE_PREFIX',
)

DELEGATE_PREFIX = 'delegate_to_'


def step_scope(deps: RunDeps) -> str:
    """The run-independent name of an agent run: `supervisor`, or a delegation id without the run id."""
    did = deps.delegation_id
    if not did:
        return deps.agent_path
    return did[len(deps.run_id) + 1 :] if did.startswith(deps.run_id + ':') else did


def step_id(deps: RunDeps, key: str) -> str:
    """The step id of an observer call key (`<delegation or run>#<suffix>`)."""
    base = deps.delegation_id or deps.run_id
    suffix = key[len(base) :] if key.startswith(base) else '#' + key.rpartition('#')[2]
    return step_scope(deps) + suffix


def tool_step_id(call: ToolCall) -> str:
    # The response number too: some models reuse tool call ids from one turn to the next.
    return f'{step_id(call.deps, call.key)}@{call.step}'


_VOLATILE = re.compile(rb'"(?:timestamp|run_id|conversation_id|model_id)":"[^"]*",?')
#: id(message) -> (the message, its parts list, its JSON minus volatile fields).
Fragments = dict[int, tuple[Any, Any, bytes]]
# One `Fragments` per agent run, keyed weakly by the run's deps (one object per agent run): a
# conversation's history goes with every request, so each message is serialised once per agent run,
# not once per later request, and the cache goes with the run. (A process-wide cache kept each
# message for hundreds of runs: every one of them was promoted to the collector's oldest generation,
# which then ran more often, over more objects.)
_run_fragments: weakref.WeakKeyDictionary[RunDeps, Fragments] = weakref.WeakKeyDictionary()


def _fragment(message: Any, cache: Fragments) -> bytes:
    hit = cache.get(id(message))
    if hit is not None and hit[0] is message and hit[1] is message.parts:
        return hit[2]
    frag = _VOLATILE.sub(b'', ModelMessagesTypeAdapter.dump_json([message])[1:-1])
    cache[id(message)] = (message, message.parts, frag)
    return frag


def messages_hash(messages: Sequence[Any], cache: Fragments | None = None) -> str:
    """sha256 of the serialized messages minus what differs between identical calls (timestamps, run
    and conversation ids, the id pydantic-ai stamps of the model object that served a response).
    Quotes inside string values are escaped in JSON, so only real keys match. The digest is that of
    the whole list's JSON, built from each message's JSON (serialised once per `cache`, `_fragment`)."""
    cache = {} if cache is None else cache
    h = hashlib.sha256(b'[')
    for i, m in enumerate(messages):
        if i:
            h.update(b',')
        h.update(_fragment(m, cache))
    h.update(b']')
    return h.hexdigest()


def input_hash(call: ModelCall) -> str:
    """`messages_hash` of the call's input, computed once per call (the recorder and the audit log
    share it), each message's JSON once per agent run."""
    digest = call.extra.get('input_hash')
    if digest is None:
        cache = _run_fragments.get(call.deps)
        if cache is None:
            cache = _run_fragments[call.deps] = {}
        digest = call.extra['input_hash'] = messages_hash(call.messages, cache)
    return digest


def input_tail(messages: Any) -> str:
    """What the model was just told (the last request's parts), shortened: for divergence reports."""
    last = next((m for m in reversed(list(messages)) if isinstance(m, ModelRequest)), None)
    if last is None:
        return ''
    text = ' | '.join(str(getattr(p, 'content', '')) for p in last.parts)
    text = ' '.join(text.split())
    return text if len(text) <= 200 else text[:199] + '…'


def response_json(call: ModelCall, response: ModelResponse) -> bytes:
    """The response's JSON (`[response]`), serialised once per call and shared by its observers."""
    data = call.extra.get('response_json')
    if data is None:
        data = call.extra['response_json'] = ModelMessagesTypeAdapter.dump_json([response])
    return data


def response_hash(call: ModelCall, response: ModelResponse) -> str:
    """`messages_hash([response])`, from the call's one serialisation of the response."""
    return hashlib.sha256(_VOLATILE.sub(b'', response_json(call, response))).hexdigest()


def dump_response(response: ModelResponse) -> Any:
    return ModelMessagesTypeAdapter.dump_python([response], mode='json')[0]


def _with_response(payload: dict[str, Any], response: bytes) -> str:
    """`payload` plus `'response'` as JSON text, splicing in the response's JSON already made (not
    dumping it to Python and encoding it again)."""
    head = json.dumps(payload, default=str)
    return head[:-1] + (', ' if len(head) > 2 else '') + '"response": ' + response[1:-1].decode() + '}'


def load_response(payload: Any) -> ModelResponse:
    msg = ModelMessagesTypeAdapter.validate_python([payload])[0]
    assert isinstance(msg, ModelResponse)
    return msg


def _insert_rows(c: sa.Connection, rows: list[tuple[str, str, str, Any, float]]) -> None:
    # payload: a dict, or its JSON text already made (`_with_response`). seq: the next number of the run, taken inside the statement (under the write lock). Plain
    # DB-API executemany: one prepared statement for every row.
    mark = '?' if c.dialect.paramstyle == 'qmark' else '%s'
    sql = (
        f'INSERT INTO {recordings.name} (run_id, step, seq, kind, payload, created_at) '
        f'SELECT {mark}, {mark}, COALESCE(MAX(seq), 0) + 1, {mark}, {mark}, {mark} FROM {recordings.name} WHERE run_id = {mark} '
        'ON CONFLICT (run_id, step) DO NOTHING'
    )
    _sql.driver_sql(
        c,
        sql,
        [
            (run_id, step, kind, payload if isinstance(payload, str) else json.dumps(payload, default=str), at, run_id)
            for run_id, step, kind, payload, at in rows
        ],
    )


WORKSPACE_STEP = 'workspace#start'
_SKIP_DIRS = frozenset(
    {'.git', '.venv', 'venv', 'node_modules', '__pycache__', '.proctor', '.mypy_cache', '.pytest_cache'}
)


def snapshot_workspace(root: Path, *, max_files: int = 500, max_bytes: int = 2_000_000) -> dict[str, Any] | None:
    """The text files of a small workspace, or None when it is too big to keep with the recording."""
    files: dict[str, str] = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for name in filenames:
            path = Path(dirpath) / name
            try:
                data = path.read_bytes()
                text = data.decode()
            except (OSError, UnicodeDecodeError):
                continue  # binary or unreadable: replay copies today's file instead
            total += len(data)
            if len(files) >= max_files or total > max_bytes:
                return None
            files[path.relative_to(root).as_posix()] = text
    return {'files': files}


def restore_workspace(snapshot: dict[str, Any], root: Path) -> None:
    """Turn `root` (a scratch copy of today's workspace) back into the snapshot: its text files as
    they were, text files it did not have removed (the run made them); binary files stay as they are."""
    files = snapshot.get('files', {})
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for name in filenames:
            path = Path(dirpath) / name
            if path.relative_to(root).as_posix() not in files:
                try:
                    path.read_bytes().decode()
                except (OSError, UnicodeDecodeError):
                    continue
                path.unlink()
    for rel, text in files.items():
        target = (root / rel).resolve()
        if root.resolve() not in target.parents:
            continue  # never outside the scratch copy
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


class _RecordingWriter(BufferedWriter):
    """Queues rows of `proctor_recordings`; the store's writer inserts them (`BufferedWriter`)."""

    def write_batch(self, conn: sa.Connection, items: list[Any]) -> None:
        _insert_rows(conn, items)

    def _write(
        self, deps: RunDeps, step: str, kind: str, payload: dict[str, Any], *, response: bytes | None = None
    ) -> None:
        """Queue a row; `response`: the response's JSON (`[response]`), added to the payload as is."""
        payload = {'agent_path': deps.agent_path, 'specialist': deps.specialist, **payload}
        row: Any = payload if response is None else _with_response(payload, response)
        self._buf.append((deps.run_id, step, kind, row, time.time()))


class ResponseRecorder(_RecordingWriter, RunObserver):
    """Records model responses only: the checkpoint of a durable team with `record=False`
    (`orchestrator._checkpoint`), with no tool results, audit or input hashes."""

    async def after_model_call(self, call: ModelCall, response: ModelResponse) -> None:
        self._write(call.deps, step_id(call.deps, call.key), 'model', {}, response=response_json(call, response))


class Recorder(_RecordingWriter, RunObserver):
    """Records model responses and tool results into `proctor_recordings`.

    Hooks only queue the row (the run never waits on the database); the queue is written by the
    store's writer (`BufferedWriter`), at the end of each run and delegation and when a replay reads it.
    A row lost to a crash is recorded again when the run is recovered (the hooks run again).
    Put it first among the observers, so it records the raw tool result before others change it.
    """

    def __init__(self, store: StateStore, *, workspace: str | os.PathLike[str] | None = None) -> None:
        self.workspace = Path(workspace) if workspace is not None else None
        super().__init__(store)

    def on_event(self, event: RunEvent) -> None:
        if event.kind == 'run_started' and self.workspace is not None:
            # What instructions and tools saw at the start: replay restores it, not today's files.
            # (Recovery emits run_started again: the first snapshot is kept, keyed by (run, step).)
            snap = snapshot_workspace(self.workspace)
            if snap is not None:
                self._buf.append((event.run_id, WORKSPACE_STEP, 'workspace', snap, time.time()))

    async def after_model_call(self, call: ModelCall, response: ModelResponse) -> None:
        # The input's hash (shared with the audit log) lets replay notice a model asked something new.
        digest = input_hash(call)
        self._write(
            call.deps,
            step_id(call.deps, call.key),
            'model',
            {
                'model_id': call.model_id,
                'model_name': call.model_name,
                'input_hash': digest,
                'input_tail': input_tail(call.messages),
            },
            response=response_json(call, response),
        )

    async def on_model_error(self, call: ModelCall, error: BaseException) -> None:
        self._write(
            call.deps,
            step_id(call.deps, call.key),
            'model_error',
            {
                'model_id': call.model_id,
                'error': f'{type(error).__name__}: {error}'[:2000],
            },
        )

    async def after_tool_call(self, call: ToolCall, result: Any) -> Any:
        kind = 'delegate' if call.tool.startswith(DELEGATE_PREFIX) else 'tool'
        self._write(
            call.deps,
            tool_step_id(call),
            kind,
            {
                'tool': call.tool,
                'tool_call_id': call.tool_call_id,
                'args': to_jsonable_python(call.args, fallback=str),
                'result': to_jsonable_python(result, fallback=str),
            },
        )
        return result

    async def on_tool_error(self, call: ToolCall, error: BaseException) -> None:
        # Deferrals (approvals) are not outcomes: the call runs again later under the same step.
        if isinstance(error, (ApprovalRequired, CallDeferred)) or type(error).__module__.startswith('dbos'):
            return
        # A tool's `ModelRetry` reaches observers wrapped in a `ToolRetryError`: keep the tool's message.
        cause = error.__cause__ if isinstance(error, ToolRetryError) else error
        retry = isinstance(cause, ModelRetry)
        self._write(
            call.deps,
            tool_step_id(call),
            'tool_error',
            {
                'tool': call.tool,
                'tool_call_id': call.tool_call_id,
                'args': to_jsonable_python(call.args, fallback=str),
                'error_type': type(cause).__name__,
                'message': (cause.message if retry else str(error))[:4000],
                'retry': retry,
            },
        )

    async def process_output(self, call: OutputCall, proceed: Callable[[], Awaitable[Any]]) -> Any:
        step = step_id(call.deps, call.key)
        try:
            output = await proceed()
        except Exception as e:
            cause = e.__cause__ if isinstance(e, ToolRetryError) else e
            if isinstance(cause, ModelRetry):
                self._write(
                    call.deps, step, 'output_retry', {'function': call.function, 'message': cause.message[:4000]}
                )
            elif not type(e).__module__.startswith('dbos'):
                self._write(
                    call.deps,
                    step,
                    'output_error',
                    {'function': call.function, 'message': f'{type(e).__name__}: {e}'[:4000]},
                )
            raise
        # A pydantic model is rebuilt on replay from its class, so the replayed output is the same type.
        kind = f'{type(output).__module__}:{type(output).__qualname__}' if isinstance(output, BaseModel) else None
        self._write(
            call.deps,
            step,
            'output',
            {'function': call.function, 'type': kind, 'value': to_jsonable_python(output, fallback=str)},
        )
        return output


@dataclass
class RecordedStep:
    step: str
    seq: int
    kind: str  # model|model_error|tool|tool_error|delegate|output|output_retry|output_error
    payload: dict[str, Any]

    @property
    def scope(self) -> str:
        return self.step.rpartition('#')[0]

    @property
    def index(self) -> int | None:
        """The request number of a model step."""
        tail = self.step.rpartition('#')[2]
        return int(tail[6:]) if tail.startswith('model:') and tail[6:].isdigit() else None

    def response(self) -> ModelResponse:
        return load_response(self.payload['response'])

    def output(self) -> Any:
        """The recorded value of an `output` step, as the type it had when it can be imported."""
        value, kind = self.payload.get('value'), self.payload.get('type')
        if kind:
            try:
                module, _, qual = kind.partition(':')
                cls: Any = importlib.import_module(module)
                for part in qual.split('.'):
                    cls = getattr(cls, part)
                return cls.model_validate(value)
            except Exception:
                return value
        return value


@dataclass
class Recording:
    """A recorded run: what it was asked, what happened, and every step replay needs."""

    run_id: str
    team: str
    project: str
    data_class: str
    task: str
    status: str
    factory: str | None = None
    workspace: str | None = None
    output: Any = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    steps: list[RecordedStep] = field(default_factory=list)
    guard_decisions: list[dict[str, Any]] = field(default_factory=list)
    delegations: list[dict[str, Any]] = field(default_factory=list)

    def by_step(self) -> dict[str, RecordedStep]:
        return {s.step: s for s in self.steps}

    @classmethod
    def from_store(cls, store: StateStore, run_id: str) -> Recording:
        """The recording of `run_id` (or a unique prefix of it). Raises `UnknownRunError`."""
        from ..state._records import RunRecords

        flusher.flush_store(store)  # this process's queued rows first
        rec = RunRecords(store).get(run_id)
        with store.engine.connect() as c:
            rows = c.execute(
                sa.select(recordings)
                .where(recordings.c.run_id == rec.run_id)
                .order_by(recordings.c.seq, recordings.c.created_at)
            ).mappings()
            steps = [RecordedStep(r['step'], r['seq'], r['kind'], json.loads(r['payload'])) for r in rows]
            g = guard_events.c
            guards = [
                {
                    'agent_path': r.agent_path,
                    'hook': r.hook,
                    'guard': r.guard,
                    'decision': r.decision,
                    'reason': r.reason,
                }
                for r in c.execute(sa.select(guard_events).where(g.run_id == rec.run_id).order_by(g.id))
            ]
        return cls(
            run_id=rec.run_id,
            team=rec.team,
            project=rec.project,
            data_class=rec.data_class,
            task=rec.task,
            status=rec.status,
            factory=rec.factory,
            workspace=rec.workspace,
            output=rec.output,
            error=rec.error,
            input_tokens=rec.input_tokens,
            output_tokens=rec.output_tokens,
            cost_usd=rec.cost_usd,
            steps=steps,
            guard_decisions=guards,
            delegations=[
                {
                    'scope': d.delegation_id[len(rec.run_id) + 1 :],
                    'specialist': d.specialist,
                    'subtask': d.subtask,
                    'model_id': d.model_id,
                    'status': d.status,
                    'output': d.output,
                    'input_tokens': d.input_tokens,
                    'output_tokens': d.output_tokens,
                    'cost_usd': d.cost_usd,
                }
                for d in rec.delegations
            ],
        )

    @classmethod
    async def aload(cls, store: StateStore, run_id: str) -> Recording:
        return await anyio.to_thread.run_sync(cls.from_store, store, run_id)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        """Write the recording as JSON (a regression-test fixture)."""
        p = Path(path)
        p.write_text(json.dumps(self.to_json(), indent=1, default=str))
        return p

    @classmethod
    def from_file(cls, path: str | Path) -> Recording:
        """Read a recording saved with `save`. Raises `UserError` naming the file when it is not one."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
            data['steps'] = [RecordedStep(**s) for s in data.get('steps', [])]
            return cls(**data)
        except FileNotFoundError:
            raise UserError(f'recording file {str(p)!r} does not exist') from None
        except (ValueError, TypeError, KeyError) as e:
            raise UserError(f'{p}: not a proctor recording ({type(e).__name__}: {e})') from None
