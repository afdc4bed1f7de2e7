"""A team for the crash tests and the crash soak, rebuilt by path in each process
(`tests/crash_team.py:build_team`).

The supervisor delegates to `coding` and `research` in parallel. `coding` calls `bump('safe')`, then
`bump('risky')` (which needs an operator's approval), then answers. `bump` is a side effect: it
appends its name to `$CRASH_COUNTER` (fsynced) — the counter file proves how often each effect
really happened. Pause points the test controls with files (the process waits while the file
exists, after announcing itself in `$CRASH_DIR/trace`):

- `$CRASH_DIR/pause-effect-<name>-before` / `-after`: inside the effect, before / after it acts;
- `$CRASH_DIR/pause-model-<turn>`: the coding model, before answering turn `<turn>`.

`$CRASH_EFFECT_S` makes each effect take that long before and after it acts (the soak kills at random).
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


def build_team() -> Team:
    async def coding_model(messages: list) -> object:
        turn = sum(1 for m in messages if getattr(m, 'kind', '') == 'response')
        await _pause(f'pause-model-{turn}')
        trace(f'coding-model:{turn}')
        if turn == 0:
            return [tool_call('bump', {'name': 'safe'})]
        if turn == 1:
            return [tool_call('bump', {'name': 'risky'})]
        return text('coding: ' + ' | '.join(tool_results(messages)))

    supervisor = ScriptedModel(
        [
            [delegate('coding', 'change it'), delegate('research', 'look it up')],
            lambda messages: text('done: ' + ' | '.join(tool_results(messages))),
        ]
    )
    here = pathlib.Path(__file__).resolve()
    return Team(
        Supervisor(model=supervisor),
        [
            Specialist('coding', 'Code.', model=ScriptedModel(coding_model, name='cod'), tools=[bump]),
            Specialist('research', 'Research.', model=ScriptedModel([text('research: ok')], name='res')),
        ],
        name='crash-team',
        factory=f'{here}:build_team',
        guardrails=[ApprovalPolicy([ApprovalRule(tool='bump', args={'name': 'risky*'}, reason='risky effect')])],
    )


if __name__ == '__main__':
    import json
    import sys

    result = build_team().run_sync('ship it', run_id=sys.argv[1])
    print(json.dumps({'status': result.status, 'output': result.output}))
