"""A team for the crash tests and the crash soak, rebuilt by path in each process
(`tests/crash_team.py:build_team`).

The supervisor delegates to `coding` and `research` in parallel. `coding` calls `bump('safe')`, then
`bump('risky')` (which needs an operator's approval), then answers. `bump` is a side effect: it
appends its name to `$CRASH_COUNTER` (fsynced) — the counter file proves how often each effect
really happened. Pause points the test controls with files (the process waits while the file
exists, after announcing itself in `$CRASH_DIR/trace`):

- `$CRASH_DIR/pause-effect-<name>-before` / `-after`: inside the effect, before / after it acts;
- `$CRASH_DIR/pause-model-<turn>`: the coding model, before answering turn `<turn>` (`pause-supervisor-<turn>`,
  `pause-research-<turn>`: the other two models).

`$CRASH_EFFECT_S` makes each effect take that long before and after it acts (the soak kills at random).

Every model call appends `model:<agent path>:<turn>` to the trace, so a test can tell a model call
made again after resume (`recorded_calls`: the calls whose response the state store already holds).
Run as a script (`crash_team.py RUN`), the process also waits at start-up points while the file
`$CRASH_DIR/pause-start-<point>` exists (`imported`, `built`, `recorded`, `launched`, `started`).
"""

from __future__ import annotations

import os
import pathlib

import anyio
from pydantic_ai import RunContext

from proctor import RunDeps, Specialist, Supervisor, Team
from proctor.guardrails import ApprovalPolicy, ApprovalRule
from proctor.testing import ScriptedModel, delegate, text, tool_call, tool_results
from proctor.tools._journal import side_effect_step


def _dir() -> pathlib.Path:
    return pathlib.Path(os.environ['CRASH_DIR'])


def _append(path: pathlib.Path, line: str) -> None:
    with open(path, 'a') as f:
        f.write(line + '\n')
        f.flush()
        os.fsync(f.fileno())


def _effect_s() -> float:
    return float(os.environ.get('CRASH_EFFECT_S', '0'))  # the soak makes effects take time, to kill inside them


def trace(line: str) -> None:
    _append(_dir() / 'trace', line)


async def _pause(name: str) -> None:
    gate = _dir() / name
    if gate.exists():
        trace(f'paused:{name}')
        while gate.exists():  # the test SIGKILLs the process while it waits here
            await anyio.sleep(0.01)


async def bump(ctx: RunContext[RunDeps], name: str) -> str:
    """Record one side effect called `name`."""

    async def act() -> str:
        trace(f'effect:{name}:enter')
        await _pause(f'pause-effect-{name}-before')
        await anyio.sleep(_effect_s())
        _append(_dir() / 'counter', name)
        trace(f'effect:{name}:acted')
        await _pause(f'pause-effect-{name}-after')
        await anyio.sleep(_effect_s())
        return f'bumped {name}'

    return await side_effect_step('crash.bump', act)


def _turn(messages: list) -> int:
    return sum(1 for m in messages if getattr(m, 'kind', '') == 'response')


def recorded_calls(state_dir: pathlib.Path) -> set[str]:
    """`<agent path>:<turn>` of every model call whose response the run's recording holds."""
    import json
    import sqlite3

    db = state_dir / 'proctor.db'
    if not db.exists():
        return set()
    with sqlite3.connect(db) as c:
        try:
            rows = c.execute("SELECT step, payload FROM proctor_recordings WHERE kind = 'model'").fetchall()
        except sqlite3.OperationalError:  # killed before the schema was made
            return set()
    # Step `<scope>#model:<n>`: the n-th request of that agent run (n from 1), answering turn n - 1.
    return {f'{json.loads(p)["agent_path"]}:{int(step.rpartition(":")[2]) - 1}' for step, p in rows}


def model_calls(trace_lines: list[str]) -> list[str]:
    """`<agent path>:<turn>` of every model call in these trace lines."""
    return [line[len('model:') :] for line in trace_lines if line.startswith('model:')]


def build_team() -> Team:
    async def coding_model(messages: list) -> object:
        turn = _turn(messages)
        await _pause(f'pause-model-{turn}')
        trace(f'coding-model:{turn}')
        trace(f'model:supervisor>coding:{turn}')
        if turn == 0:
            return [tool_call('bump', {'name': 'safe'})]
        if turn == 1:
            return [tool_call('bump', {'name': 'risky'})]
        return text('coding: ' + ' | '.join(tool_results(messages)))

    async def supervisor_model(messages: list) -> object:
        turn = _turn(messages)
        await _pause(f'pause-supervisor-{turn}')
        trace(f'model:supervisor:{turn}')
        if turn == 0:
            return [delegate('coding', 'change it'), delegate('research', 'look it up')]
        return text('done: ' + ' | '.join(tool_results(messages)))

    async def research_model(messages: list) -> object:
        turn = _turn(messages)
        await _pause(f'pause-research-{turn}')
        trace(f'model:supervisor>research:{turn}')
        return text('research: ok')

    here = pathlib.Path(__file__).resolve()
    return Team(
        Supervisor(model=ScriptedModel(supervisor_model, name='sup')),
        [
            Specialist('coding', 'Code.', model=ScriptedModel(coding_model, name='cod'), tools=[bump]),
            Specialist('research', 'Research.', model=ScriptedModel(research_model, name='res')),
        ],
        name='crash-team',
        factory=f'{here}:build_team',
        guardrails=[ApprovalPolicy([ApprovalRule(tool='bump', args={'name': 'risky*'}, reason='risky effect')])],
    )


def _start_pause(point: str) -> None:
    """Wait while `pause-start-<point>` exists (blocking: nothing else may move on meanwhile)."""
    import time

    gate = _dir() / f'pause-start-{point}'
    if gate.exists():
        trace(f'paused:pause-start-{point}')
        while gate.exists():
            time.sleep(0.01)


def _with_start_pauses(team: Team) -> Team:
    """Pause points after the run is recorded, after DBOS launched, after the workflow started."""
    from proctor.orchestrator import _team as team_module

    create_run, launch, execute = team.records.create_run, team_module._launch, team.execute

    def recorded(**kwargs: object) -> object:
        out = create_run(**kwargs)  # type: ignore[arg-type]
        _start_pause('recorded')
        return out

    def launched(store: object) -> None:
        launch(store)  # type: ignore[arg-type]
        _start_pause('launched')

    async def started(*args: object) -> object:
        _start_pause('started')  # in the run's workflow: DBOS has recorded it as started
        return await execute(*args)  # type: ignore[arg-type]

    team.records.create_run = recorded  # type: ignore[method-assign]
    team_module._launch = launched  # type: ignore[assignment]
    team.execute = started  # type: ignore[method-assign]
    return team


if __name__ == '__main__':
    import json
    import sys

    _start_pause('imported')
    team = build_team()
    _start_pause('built')
    result = _with_start_pauses(team).run_sync('ship it', run_id=sys.argv[1])
    print(json.dumps({'status': result.status, 'output': result.output}))
