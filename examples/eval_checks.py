"""Checks and output types the example suites (`examples/evals/*.toml`) name as `module:function`."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field


class Answer(BaseModel):
    """What the reasoning suite expects: the answer and the steps that lead to it."""

    answer: int
    steps: list[str] = Field(min_length=1)


def shows_work(output: str, case) -> tuple[float, str]:
    """A score for the working: one step or more is half marks, two or more full marks."""
    try:
        steps = json.loads(output).get('steps', [])
    except (ValueError, AttributeError):
        return 0.0, 'not a JSON object'
    score = 1.0 if len(steps) >= 2 else 0.5 if steps else 0.0
    return score, f'{len(steps)} step(s) for {case.name}'
