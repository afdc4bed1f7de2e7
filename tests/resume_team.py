"""A team for the kill-and-resume test, rebuilt by path in each process (`tests/resume_team.py:build_team`).

Every model call appends a line to `$RESUME_CALLS` (so the test can count calls across processes).
The coding specialist's model waits, while `$RESUME_GATE` exists, after announcing itself in
`$RESUME_CALLS`: the test SIGKILLs the process there, after the research delegation has finished.
"""

from __future__ import annotations

import os
import pathlib

import anyio

from proctor import Specialist, Supervisor, Team
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_results


def _log(line: str) -> None:
    with open(os.environ['RESUME_CALLS'], 'a') as f:
        f.write(line + '\n')
        f.flush()
        os.fsync(f.fileno())


def build_team() -> Team:
    async def supervisor(messages):
        results = tool_results(messages)
        _log(f'supervisor:{len(results)}')
        if not results:
            return [delegate('research', 'find the api')]
        if len(results) == 1:
            return [delegate('coding', 'write the code')]
        return text('done: ' + ' | '.join(results))

    async def research(messages):
        _log('research')
        return text(f'research:{last_user_prompt(messages)}')

    async def coding(messages):
        _log('coding')
        gate = pathlib.Path(os.environ['RESUME_GATE'])
        while gate.exists():  # the first process is killed while it waits here
            await anyio.sleep(0.02)
        return text(f'coding:{last_user_prompt(messages)}')

    here = pathlib.Path(__file__).resolve()
    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='sup')),
        [
            Specialist('research', 'Research.', model=ScriptedModel(research, name='res')),
            Specialist('coding', 'Code.', model=ScriptedModel(coding, name='cod')),
        ],
        name='resume-team',
        factory=f'{here}:build_team',
    )


if __name__ == '__main__':
    import sys

    result = build_team().run_sync(sys.argv[1], run_id=sys.argv[2])
    print(result.output)
