"""The team the scale-out example's workers run (loaded by path: `examples/scale_out/team.py:build_team`).

Scripted models (offline, no API key): the supervisor hands the task to a research specialist that
has the shared memory's `remember` / `recall` tools. A task `remember: <fact>` stores the fact; a
task `recall: <question>` searches for it. The memory is `ChromaMemory.from_env()`: the Chroma
server at `$PROCTOR_CHROMA_URL` (what `proctor worker --chroma-url` sets), so a fact remembered by a
run on one worker is recalled by runs on every other worker.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_ai.messages import ModelRequest, UserPromptPart

from proctor import Specialist, Supervisor, Team
from proctor.memory import ChromaMemory
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_call, tool_results

HERE = Path(__file__).resolve()


def _task(messages) -> str:
    for m in messages:
        if isinstance(m, ModelRequest):
            for p in m.parts:
                if isinstance(p, UserPromptPart) and isinstance(p.content, str):
                    return p.content
    return ''


def build_team() -> Team:
    memory = ChromaMemory.from_env()

    def supervisor(messages):
        results = tool_results(messages)
        if not results:
            return [delegate('research', _task(messages))]
        return text(results[0])

    def research(messages):
        kind, _, body = last_user_prompt(messages).partition(':')
        done = tool_results(messages)
        if not done:
            if kind.strip() == 'remember':
                return [tool_call('remember', {'text': body.strip(), 'tags': ['ops']})]
            return [tool_call('recall', {'query': body.strip(), 'k': 1})]
        first_line = done[0].splitlines()[-1] if kind.strip() == 'recall' else done[0]
        return text(f'{first_line}  [worker pid {os.getpid()}]')

    return Team(
        Supervisor(model=ScriptedModel(supervisor, name='scripted-supervisor', latency=0.05)),
        [
            Specialist(
                'research',
                'Remember and recall facts.',
                model=ScriptedModel(research, name='scripted-research', latency=0.05),
                toolsets=[memory.tools()],
            )
        ],
        name='scale-demo',
        factory=f'{HERE}:build_team',
    )
