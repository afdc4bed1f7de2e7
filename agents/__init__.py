"""Specialists: the `Specialist` declaration and the built-in research, coding and review specialists."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._builtin import (
        CODING_INSTRUCTIONS,
        RESEARCH_INSTRUCTIONS,
        REVIEW_INSTRUCTIONS,
        Review,
        coding,
        research,
        review,
    )
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

#: Public name -> the submodule that defines it; imported on first access (PEP 562) so that
#: `import proctor.agents` stays cheap and each name pulls in only what it needs.
_LAZY = {
    'CODING_INSTRUCTIONS': '._builtin',
    'RESEARCH_INSTRUCTIONS': '._builtin',
    'REVIEW_INSTRUCTIONS': '._builtin',
    'Review': '._builtin',
    'coding': '._builtin',
    'research': '._builtin',
    'review': '._builtin',
    'DEFAULT_SUPERVISOR_INSTRUCTIONS': '._specialist',
    'Specialist': '._specialist',
    'Supervisor': '._specialist',
}


from .._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
