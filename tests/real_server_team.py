"""The team of the real-server tier, rebuilt by path (`proctor replay` needs its factory).

Supervisor and research both on `smollm2` served by llama-cpp-python's server, registered in the
proctor.toml named by `$PROCTOR_LLAMA_CONFIG`. A 135M model is steered, not trusted: each agent may
call a tool on its first request (tool_choice auto; the server's chatml-function-calling grammar makes
the call well-formed) and must answer in text once a tool result is in (tool_choice none).
"""

from __future__ import annotations

import os
import pathlib

from pydantic_ai.messages import ModelRequest, ToolReturnPart

from proctor import ModelRouter, Specialist, Supervisor, Team

LOOKUPS: list[str] = []


def lookup(topic: str) -> str:
    """Look up the facts about a topic."""
    LOOKUPS.append(topic)
    return f'Facts about {topic[:40]}: Paris is the capital of France.'


def _first_step_may_call_a_tool(ctx) -> dict:
    called = any(isinstance(p, ToolReturnPart) for m in ctx.messages if isinstance(m, ModelRequest) for p in m.parts)
    return {'tool_choice': 'none' if called else 'auto', 'max_tokens': 24, 'temperature': 0.0}


def build_team() -> Team:
    return Team(
        Supervisor(
            model='smollm2',
            instructions='Delegate the task to research.',
            model_settings=_first_step_may_call_a_tool,  # type: ignore[arg-type]
        ),
        [
            Specialist(
                'research',
                'Call lookup.',
                model='smollm2',
                tools=[lookup],
                model_settings=_first_step_may_call_a_tool,  # type: ignore[arg-type]
            )
        ],
        router=ModelRouter.from_file(os.environ['PROCTOR_LLAMA_CONFIG']),
        name='real-server',
        factory=f'{pathlib.Path(__file__).resolve()}:build_team',
    )
