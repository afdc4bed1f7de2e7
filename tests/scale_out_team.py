"""A team for the scale-out tests and benchmark, rebuilt by path in every worker
(`tests/scale_out_team.py:build_team`).

Each task is a tag like `job-7`. The supervisor delegates `research job-7` then `code job-7` and
answers `done job-7: ...`. The research specialist calls `record_fact`, a side effect (a DBOS step,
via `side_effect_step`) that appends `<tag> <pid>` to `$SCALE_EFFECTS`; every model call appends
`<tag> <agent> <pid>` to `$SCALE_CALLS`, so tests count calls and effects across processes.
`$SCALE_LATENCY` seconds of scripted latency per model call; while the file `$SCALE_GATE` exists,
the coding model waits (after logging its call): a test kills the worker there. For a tag starting
with `gated`, the coding specialist instead calls `publish`, which waits for an operator's approval.
While the file `$SCALE_RESEARCH_GATE`, or that path with `.<pid>` appended, exists, the research
model waits after logging its call (the fence test pauses one worker there and lets the other on);
while `$SCALE_BEAT_GATE.<pid>` exists, that worker's heartbeat waits before it beats (the window in
which a worker declared dead does not know it yet).
"""

from __future__ import annotations

import os
import pathlib

import anyio
from pydantic_ai import RunContext
from pydantic_ai.messages import ModelRequest, UserPromptPart

from proctor import RunDeps, Specialist, Supervisor, Team
from proctor.guardrails import ApprovalPolicy, ApprovalRule
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_call, tool_results
from proctor.tools._journal import side_effect_step

HERE = pathlib.Path(__file__).resolve()


def _append(env: str, line: str) -> None:
    path = os.environ.get(env)
    if not path:
        return
    # One O_APPEND write per line: lines from concurrent processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + '\n').encode())
    finally:
        os.close(fd)


def _tag(messages) -> str:
    for m in messages:
        if isinstance(m, ModelRequest):
            for p in m.parts:
                if isinstance(p, UserPromptPart) and isinstance(p.content, str):
                    return p.content.split()[-1]
    return '?'


async def record_fact(ctx: RunContext[RunDeps], fact: str) -> str:
    """Record a fact (a side effect that must happen once per run)."""

    async def act() -> str:
        _append('SCALE_EFFECTS', f'{fact} {os.getpid()}')
        return f'recorded {fact}'

    return await side_effect_step('record_fact', act)


async def publish(ctx: RunContext[RunDeps], what: str) -> str:
    """Publish a result (needs an operator's approval; a side effect that must happen once)."""

    async def act() -> str:
        _append('SCALE_EFFECTS', f'published:{what} {os.getpid()}')
        return f'published {what}'

    return await side_effect_step('publish', act)


def _gate_heartbeats() -> None:
    """Heartbeats of this process wait while `$SCALE_BEAT_GATE.<pid>` exists (imported by a worker)."""
    from proctor.state._heartbeats import Heartbeats

    gate = os.environ.get('SCALE_BEAT_GATE')
    beat = Heartbeats.beat
    if not gate or getattr(beat, 'gated', False):
        return

    def gated(self: Heartbeats, executor_id: str) -> bool:
        import time

        while pathlib.Path(f'{gate}.{os.getpid()}').exists():
            time.sleep(0.02)
        return beat(self, executor_id)

    gated.gated = True  # type: ignore[attr-defined]
    Heartbeats.beat = gated  # type: ignore[method-assign]


_gate_heartbeats()


def build_team() -> Team:
    latency = float(os.environ.get('SCALE_LATENCY', '0'))

    async def supervisor(messages):
        tag, results = _tag(messages), tool_results(messages)
        _append('SCALE_CALLS', f'{tag} supervisor:{len(results)} {os.getpid()}')
        if not results:
            return [delegate('research', f'research {tag}')]
        if len(results) == 1:
            return [delegate('coding', f'code {tag}')]
        return text(f'done {tag}: ' + ' | '.join(results))

    async def research(messages):
        tag = last_user_prompt(messages).split()[-1]
        _append('SCALE_CALLS', f'{tag} research {os.getpid()}')
        gate = os.environ.get('SCALE_RESEARCH_GATE')
        while gate and any(pathlib.Path(g).exists() for g in (gate, f'{gate}.{os.getpid()}')):
            await anyio.sleep(0.02)
        if not tool_results(messages):
            return [tool_call('record_fact', {'fact': tag})]
        return text(f'found {tag}')

    async def coding(messages):
        tag = last_user_prompt(messages).split()[-1]
        _append('SCALE_CALLS', f'{tag} coding {os.getpid()}')
        gate = os.environ.get('SCALE_GATE')
        while gate and not tag.startswith('gated') and pathlib.Path(gate).exists():  # SIGKILLed while it waits here
            await anyio.sleep(0.02)
        if tag.startswith('gated') and not tool_results(messages):
            return [tool_call('publish', {'what': tag})]
        return text(f'coded {tag}' + ''.join(f' ({r})' for r in tool_results(messages)))

    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='sup', latency=latency)),
        [
            Specialist(
                'research', 'Research.', model=ScriptedModel(research, name='res', latency=latency), tools=[record_fact]
            ),
            Specialist('coding', 'Code.', model=ScriptedModel(coding, name='cod', latency=latency), tools=[publish]),
        ],
        name='scale-team',
        guardrails=[ApprovalPolicy([ApprovalRule(tool='publish', role='operator', reason='publishing is public')])],
        factory=f'{HERE}:build_team',
    )
