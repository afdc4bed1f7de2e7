"""The built-in research, coding and review specialists and their prompts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..tools import list_files, read_file, run_command, run_tests, search_files, write_file
from ._specialist import Specialist

__all__ = (
    'Review',
    'research',
    'coding',
    'review',
    'RESEARCH_INSTRUCTIONS',
    'CODING_INSTRUCTIONS',
    'REVIEW_INSTRUCTIONS',
)

RESEARCH_INSTRUCTIONS = (
    'You are the research specialist. Answer the subtask from the files of the workspace: list them, '
    'search them and read the relevant ones. Reply with a short, factual summary that cites file paths.'
)
CODING_INSTRUCTIONS = (
    'You are the coding specialist. Make the change the subtask asks for by writing files inside the '
    'workspace (relative paths only), then run the tests. Reply with what you changed and the test outcome.'
)
REVIEW_INSTRUCTIONS = (
    'You are the review specialist. Read the change, run the tests, and return a verdict: approve if the '
    'change does what was asked and the tests pass, otherwise request_changes with concrete comments.'
)


class Review(BaseModel):
    """A reviewer's structured verdict."""

    verdict: Literal['approve', 'request_changes']
    comments: list[str] = Field(default_factory=list, max_length=10)


def research(model: Any = None, **kwargs: Any) -> Specialist:
    """A specialist that reads and searches the workspace."""
    kwargs.setdefault('requires', ('reasoning',))
    return Specialist(
        name=kwargs.pop('name', 'research'),
        instructions=kwargs.pop('instructions', RESEARCH_INSTRUCTIONS),
        model=model,
        tools=(list_files, search_files, read_file, *kwargs.pop('tools', ())),
        description=kwargs.pop('description', 'reads and searches the workspace files'),
        **kwargs,
    )


def coding(model: Any = None, **kwargs: Any) -> Specialist:
    """A specialist that reads and writes workspace files and runs commands (with a timeout)."""
    kwargs.setdefault('requires', ('coding',))
    return Specialist(
        name=kwargs.pop('name', 'coding'),
        instructions=kwargs.pop('instructions', CODING_INSTRUCTIONS),
        model=model,
        tools=(list_files, read_file, write_file, run_tests, run_command, *kwargs.pop('tools', ())),
        description=kwargs.pop('description', 'writes code in the workspace and runs the tests'),
        **kwargs,
    )


def review(model: Any = None, **kwargs: Any) -> Specialist:
    """A specialist that reads the change, runs the tests and returns a `Review`."""
    kwargs.setdefault('requires', ('reasoning',))
    return Specialist(
        name=kwargs.pop('name', 'review'),
        instructions=kwargs.pop('instructions', REVIEW_INSTRUCTIONS),
        model=model,
        tools=(list_files, read_file, run_tests, *kwargs.pop('tools', ())),
        output_type=kwargs.pop('output_type', Review),
        description=kwargs.pop('description', 'reviews a change and returns approve or request_changes'),
        **kwargs,
    )
