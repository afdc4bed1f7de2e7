"""Lazy imports. PEP 562 lazy attributes for the package `__init__` modules: a public name's submodule
is imported on first access, so `import proctor` stays cheap and each name pulls in only what it
needs. `lazy_module`: a module imported on first attribute access, for a module whose import-time
dependencies are needed only once it is used (`Team` reaches the state store, and SQLAlchemy, only
when a team is built)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ('lazy_attributes', 'lazy_module')


def lazy_attributes(
    package: str, names: Mapping[str, str], public: tuple[str, ...]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`(__getattr__, __dir__)` for `package`, where `names` maps a public name to its relative submodule."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(public))

    return __getattr__, __dir__


class _LazyModule:
    """Stands for module `name` until an attribute is read: then imports it (the import system's lock
    makes that safe from any thread) and keeps each attribute read, so later reads are plain lookups."""

    def __init__(self, name: str) -> None:
        self.__dict__['_lazy_name'] = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self.__dict__['_lazy_name']), attr)
        self.__dict__[attr] = value
        return value

    def __repr__(self) -> str:
        return f'<lazy module {self.__dict__["_lazy_name"]!r}>'


def lazy_module(name: str) -> Any:
    """Module `name` (absolute), imported on the first attribute read. Bind it under `if not
    TYPE_CHECKING:` beside a plain import for the type checker."""
    return _LazyModule(name)
