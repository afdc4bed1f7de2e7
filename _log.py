"""Loggers that import structlog on first use: structlog (with rich's tracebacks behind it) costs
~100 ms at import, which `import proctor` should not pay before anything is logged."""

from __future__ import annotations

from typing import Any

__all__ = ('get_logger',)


class _LazyLogger:
    __slots__ = ('_name', '_logger')

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        logger = self._logger
        if logger is None:
            import structlog

            logger = self._logger = structlog.get_logger(self._name)
        return getattr(logger, attr)


def get_logger(name: str) -> Any:
    """A structlog logger named `name`, created when it first logs (it follows `structlog.configure`)."""
    return _LazyLogger(name)
