"""A nested team for the hierarchical crash and approval tests, rebuilt by path in each process
(`tests/nested_crash_team.py:build_team`).

    supervisor ─┬─ coding ─┬─ implementer: bump('implemented'), answers
                │          └─ tester:      bump('tested'), then bump('risky') (needs approval), answers
                └─ research ─┬─ reader_a
                             └─ reader_b

Every lead delegates to both its members in one turn. Each model call appends `model:<agent>:<turn>`
to `$CRASH_DIR/trace` once it answers (so a call repeated after a crash shows twice); `bump` appends
its name to `$CRASH_DIR/counter` (fsynced), exactly-once through the tool journal. Pause points:
`$CRASH_DIR/pause-model-<agent>-<turn>` (the agent's model waits before answering that turn while the
file exists, after writing `paused:...` to the trace).
"""

from __future__ import annotations

import os
import pathlib

import anyio
from pydantic_ai import RunContext

from proctor import RunDeps, Specialist, Supervisor, Team
from proctor.guardrails import ApprovalPolicy, ApprovalRule
from proctor.testing import ScriptedModel, delegate, text, tool_call, tool_results, turn_of
from proctor.tools._journal import side_effect_step


def _dir() -> pathlib.Path:
    return pathlib.Path(os.environ['CRASH_DIR'])


def _append(path: pathlib.Path, line: str) -> None:
    with open(path, 'a') as f:
        f.write(line + '\n')
        f.flush()
        os.fsync(f.fileno())


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
        _append(_dir() / 'counter', name)
        return f'bumped {name}'

    return await side_effect_step('nested.bump', act)


def scripted(agent: str, steps: list) -> ScriptedModel:
    """`steps[turn]` (the last repeats): parts, or a function of the history; traced once answered."""

    async def answer(messages: list) -> object:
        turn = turn_of(messages)
        await _pause(f'pause-model-{agent}-{turn}')
        step = steps[min(turn, len(steps) - 1)]
        out = step(messages) if callable(step) else step
        trace(f'model:{agent}:{turn}')
        return out

    return ScriptedModel(answer, name=agent)


def joined(prefix: str):
    return lambda m: text(f'{prefix}: ' + ' | '.join(tool_results(m)))


def build_team() -> Team:
    implementer = Specialist(
        'implementer',
        'Implement.',
        model=scripted('implementer', [[tool_call('bump', {'name': 'implemented'})], joined('implementer')]),
        tools=[bump],
    )
    tester = Specialist(
        'tester',
        'Test.',
        model=scripted(
            'tester',
            [[tool_call('bump', {'name': 'tested'})], [tool_call('bump', {'name': 'risky'})], joined('tester')],
        ),
        tools=[bump],
    )
    coding = Specialist(
        'coding',
        'Lead the coding.',
        model=scripted(
            'coding', [[delegate('implementer', 'write it'), delegate('tester', 'test it')], joined('coding')]
        ),
        team=[implementer, tester],
    )
    research = Specialist(
        'research',
        'Lead the research.',
        model=scripted(
            'research', [[delegate('reader_a', 'read a'), delegate('reader_b', 'read b')], joined('research')]
        ),
        team=[
            Specialist('reader_a', 'Read.', model=scripted('reader_a', [text('a: ok')])),
            Specialist('reader_b', 'Read.', model=scripted('reader_b', [text('b: ok')])),
        ],
    )
    supervisor = scripted(
        'supervisor', [[delegate('coding', 'change it'), delegate('research', 'look it up')], joined('done')]
    )
    here = pathlib.Path(__file__).resolve()
    return Team(
        Supervisor(model=supervisor),
        [coding, research],
        name='nested-crash',
        factory=f'{here}:build_team',
        guardrails=[ApprovalPolicy([ApprovalRule(tool='bump', args={'name': 'risky*'}, reason='risky effect')])],
    )


if __name__ == '__main__':
    import json
    import sys

    result = build_team().run_sync('ship it', run_id=sys.argv[1])
    print(json.dumps({'status': result.status, 'output': result.output}))
