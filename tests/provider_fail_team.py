"""A team whose worker's provider refuses the API key (for the CLI's one-line error), rebuilt by path."""

from __future__ import annotations

import pathlib

from proctor import Specialist, Supervisor, Team
from proctor.testing import ScriptedModel, delegate, fail, text, tool_results


def build_team() -> Team:
    def boss(messages):
        return text('done') if tool_results(messages) else delegate('worker', 'do it')

    def worker(messages):
        raise fail(401, 'invalid x-api-key', model_name='worker-llm')

    return Team(
        Supervisor(model=ScriptedModel(boss, name='boss-llm')),
        [Specialist('worker', 'Work.', model=ScriptedModel(worker, name='worker-llm'))],
        name='provider-fail',
        factory=f'{pathlib.Path(__file__).resolve()}:build_team',
    )
