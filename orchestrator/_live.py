"""Teams alive in this process, by name: durable workflows carry the team's name, not the team.

A run records the factory that built its team (`package.module:build_team`, or
`/path/to/script.py:build_team`), so another process (`proctor resume`, a worker) can rebuild it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import RunError, UserError

if TYPE_CHECKING:
    from ._team import Team

__all__ = ('register', 'unregister', 'get_team', 'load_factory')

_teams: dict[str, Team] = {}
_lock = threading.Lock()
_build_lock = threading.RLock()  # one factory build at a time: concurrent runs of a new team build it once


def register(team: Team) -> None:
    with _lock:
        _teams[team.name] = team


def unregister(team: Team) -> None:
    """Forget `team` (if it is the one registered under its name): replay's throwaway teams."""
    with _lock:
        if _teams.get(team.name) is team:
            del _teams[team.name]


def get_team(name: str, *, factory: str | None = None) -> Team:
    team = _teams.get(name)
    if team is None and factory:
        with _build_lock:
            team = _teams.get(name)
            if team is None:
                built = load_factory(factory)
                team = _teams.get(name)
                if team is None:
                    raise RunError(f'team factory {factory!r} built team {built.name!r}, not {name!r}')
    if team is None:
        raise RunError(f'team {name!r} is not built in this process (no factory recorded to rebuild it)')
    return team


def _load_attr(spec: str) -> Any:
    if ':' not in spec:
        raise UserError(f'team factory {spec!r} must look like "package.module:build_team" or "path/to/file.py:build_team"')
    target, _, attr = spec.rpartition(':')
    if target.endswith('.py'):
        path = Path(target)
        if not path.is_file():
            raise UserError(f'team factory file {target!r} does not exist')
        mod_name = f'_proctor_factory_{abs(hash(str(path.resolve())))}'
        module = sys.modules.get(mod_name)
        if module is None:
            spec_obj = importlib.util.spec_from_file_location(mod_name, path)
            assert spec_obj is not None and spec_obj.loader is not None
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[mod_name] = module
            spec_obj.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise UserError(f'cannot import team factory module {target!r}: {e}') from e
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserError(f'team factory {spec!r}: {target!r} has no attribute {attr!r}') from None


def load_factory(spec: str, **kwargs: Any) -> Team:
    """Build the team that `spec` names (the callable returns a `Team`)."""
    from ._team import Team

    obj = _load_attr(spec)
    team = obj(**kwargs) if callable(obj) and not isinstance(obj, Team) else obj
    if not isinstance(team, Team):
        raise UserError(f'team factory {spec!r} did not return a proctor Team')
    return team
