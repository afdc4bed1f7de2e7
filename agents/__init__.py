"""Specialists: the `Specialist` declaration and the built-in research, coding and review specialists."""

from ._builtin import CODING_INSTRUCTIONS, RESEARCH_INSTRUCTIONS, REVIEW_INSTRUCTIONS, Review, coding, research, review
from ._specialist import DEFAULT_SUPERVISOR_INSTRUCTIONS, Specialist, Supervisor

__all__ = (
    'CODING_INSTRUCTIONS',
    'DEFAULT_SUPERVISOR_INSTRUCTIONS',
    'RESEARCH_INSTRUCTIONS',
    'REVIEW_INSTRUCTIONS',
    'Review',
    'Specialist',
    'Supervisor',
    'coding',
    'research',
    'review',
)
