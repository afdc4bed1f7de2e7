"""The delegation tree of a team: the supervisor, its specialists, and the members of every lead.

A specialist with `team=[...]` leads a sub-team; each agent of the tree is named by its agent path,
the chain of delegations that reaches it (`supervisor`, `supervisor>coding`,
`supervisor>coding>tester`), which is also its `RunDeps.agent_path` at run time. The tree is checked
when the `Team` is built, never mid-run: a member that is not a `Specialist`, two members with one
name under one lead, a specialist that is its own ancestor, and a path deeper than `max_depth` are
each a `UserError` naming the path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..agents._specialist import Specialist
from ..exceptions import UserError

__all__ = ('AgentTree', 'SUPERVISOR_PATH', 'DEFAULT_MAX_DEPTH')

SUPERVISOR_PATH = 'supervisor'
DEFAULT_MAX_DEPTH = 4  # delegations from the supervisor to the deepest member (a flat team has depth 1)


@dataclass(frozen=True)
class AgentTree:
    """Every agent of a team by agent path (parents before their members) and each lead's members."""

    specs: dict[str, Specialist[Any]]
    members: dict[str, dict[str, Specialist[Any]]]  # lead's agent path -> its members by name

    @classmethod
    def build(
        cls, team: str, supervisor: Specialist[Any], specialists: Sequence[Specialist[Any]], *, max_depth: int
    ) -> AgentTree:
        if not isinstance(max_depth, int) or isinstance(max_depth, bool) or max_depth < 1:
            raise UserError(f'team {team!r}: max_depth must be a whole number >= 1, not {max_depth!r}')
        if supervisor.team:
            raise UserError(
                f"team {team!r}: the supervisor's members are the team's specialists "
                '(Team(supervisor, [specialists])), not Supervisor(team=...)'
            )
        specs: dict[str, Specialist[Any]] = {SUPERVISOR_PATH: supervisor}
        members: dict[str, dict[str, Specialist[Any]]] = {}

        def visit(path: str, lead_members: Sequence[Specialist[Any]], ancestors: tuple[int, ...]) -> None:
            named: dict[str, Specialist[Any]] = {}
            for m in lead_members:
                if not isinstance(m, Specialist):
                    raise UserError(f'team {team!r}: a member under {path} is a {type(m).__name__}, not a Specialist')
                child = f'{path}>{m.name}'
                if m.name in named:
                    raise UserError(f'team {team!r}: two members named {m.name!r} under {path}')
                if id(m) in ancestors:
                    raise UserError(f'team {team!r}: {child}: specialist {m.name!r} is its own ancestor (a cycle)')
                depth = child.count('>')
                if depth > max_depth:
                    raise UserError(
                        f'team {team!r}: {child} is {depth} delegations deep, over max_depth={max_depth} '
                        '(Team(..., max_depth=N) allows deeper teams)'
                    )
                named[m.name] = m
                specs[child] = m
                if m.team:
                    visit(child, m.team, (*ancestors, id(m)))
            members[path] = named

        visit(SUPERVISOR_PATH, specialists, (id(supervisor),))
        return cls(specs, members)

    def agent_name(self, team: str, path: str) -> str:
        """The pydantic-ai (and DBOS) name of the agent at `path`: `team.supervisor`, `team.coding`,
        `team.coding.tester` (names have no dots, so these never collide)."""
        if path == SUPERVISOR_PATH:
            return f'{team}.{self.specs[path].name}'
        return '.'.join([team, *path.split('>')[1:]])

    def member_paths(self) -> Iterator[str]:
        """Every agent path but the supervisor's."""
        return (p for p in self.specs if p != SUPERVISOR_PATH)

    def signature(self) -> tuple[str, ...]:
        """The supervisor's name, then every member's path below the supervisor (a flat team: the names)."""
        return (self.specs[SUPERVISOR_PATH].name, *sorted(p.partition('>')[2] for p in self.member_paths()))
