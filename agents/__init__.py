"""Specialists: the `Specialist` declaration and the built-in research, coding and review specialists."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
