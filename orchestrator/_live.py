"""Teams alive in this process, by (state store, name): durable workflows carry the team's name, not
the team, and run on the store DBOS was launched on.

A run records the factory that built its team (`package.module:build_team`, or
`/path/to/script.py:build_team`), so another process (`proctor resume`, a worker) can rebuild it.
Two different teams (other agents) with one name on one store would serve each other's runs, so the
second one is refused (`UserError`) until the first is closed (`Team.close()`); building the same team
again (a factory called twice, a replay's clone) replaces it, as the latest build serves recovery.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..exceptions import RunError, UserError

if TYPE_CHECKING:
    from ..state._store import StateStore

__all__ = ('LiveTeam', 'TeamRegistry', 'teams', 'load_factory')


class LiveTeam(Protocol):
    """What the registry needs of a team (`proctor.Team`)."""

    @property
    def name(self) -> str: ...

    @property
    def store(self) -> StateStore: ...

    @property
    def signature(self) -> tuple[str, ...]: ...


class TeamRegistry:
    """The teams built in this process, keyed by (state store URL, team name)."""

    def __init__(self) -> None:
        self._teams: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._build_lock = threading.RLock()  # one factory build at a time: concurrent runs of a new team build it once

    def register(self, team: LiveTeam) -> None:
        key = (team.store.url, team.name)
        with self._lock:
            held = self._teams.get(key)
            if held is not None and held is not team and held.signature != team.signature:
                raise UserError(
                    f'a different team named {team.name!r} (agents {", ".join(held.signature)}) is already built on '
                    f'state store {team.store.url} in this process: give this one another name or state_dir, '
                    'or close() the first one'
                )
            self._teams[key] = team

    def unregister(self, team: LiveTeam) -> None:
        """Forget `team` (if it is the one registered under its key): `Team.close()`, replay's clones."""
        key = (team.store.url, team.name)
        with self._lock:
            if self._teams.get(key) is team:
                del self._teams[key]

    def find(self, store_url: str, name: str) -> Any | None:
        return self._teams.get((store_url, name))

    def get(self, store_url: str, name: str, *, factory: str | None = None) -> Any:
        """Team `name` on `store_url`, built from `factory` when it is not built in this process yet."""
        team = self._teams.get((store_url, name))
        if team is None and factory:
            with self._build_lock:
                team = self._teams.get((store_url, name))
                if team is None:
                    built = load_factory(factory)
                    team = self._teams.get((store_url, name))
                    if team is None:
                        raise RunError(
                            f'team factory {factory!r} built team {built.name!r} on {built.store.url}, '
                            f'not {name!r} on {store_url}'
                        )
        if team is None:
            raise RunError(f'team {name!r} is not built in this process (no factory recorded to rebuild it)')
        return team

    def is_registered(self, obj: object) -> bool:
        with self._lock:
            return any(t is obj for t in self._teams.values())


#: This process's teams.
teams = TeamRegistry()


def _load_attr(spec: str) -> Any:
    if ':' not in spec:
        raise UserError(
            f'team factory {spec!r} must look like "package.module:build_team" or "path/to/file.py:build_team"'
        )
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


def load_factory(spec: str, **kwargs: Any) -> Any:
    """Build the team that `spec` names (the callable returns a `Team`, which registers itself)."""
    obj = _load_attr(spec)
    team = obj if teams.is_registered(obj) else obj(**kwargs) if callable(obj) else obj
    if not teams.is_registered(team):
        raise UserError(f'team factory {spec!r} did not return a proctor Team')
    return team
