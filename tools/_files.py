"""Workspace tools for specialists, as pydantic-ai tool functions over `RunContext[RunDeps]`.

Reads are plain tools. Writes and commands are side effects: inside a durable run each one is a
recorded DBOS step, so a resumed run gets the recorded result instead of acting again.
A path that escapes the workspace is refused; the model is told why (`ModelRetry`) and may fix it.
So is every other bad argument (a NUL byte, text that is not valid UTF-8, a path too long, an
unbalanced quote in a command) and every operating-system error the call runs into: an argument
never ends the run, it comes back to the model as a tool error (recorded with the run).
Arguments are checked before a side effect is journaled, so a refused one leaves no journal row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic_ai import ModelRetry, RunContext

from ..core._deps import RunDeps
from ..exceptions import WorkspaceError
from ._command import argv_of
from ._command import run_command as _run_command
from ._journal import side_effect_step
from ._workspace import Workspace, check_text

__all__ = ('list_files', 'read_file', 'search_files', 'write_file', 'run_command', 'run_tests', 'workspace_of')

T = TypeVar('T')


def workspace_of(ctx: RunContext[RunDeps]) -> Workspace:
    if not ctx.deps.workspace:
        raise ModelRetry('this team has no workspace folder; file tools are unavailable')
    return Workspace.open(ctx.deps.workspace)


async def _guarded(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await fn()
    except WorkspaceError as e:
        raise ModelRetry(str(e)) from e
    except (OSError, ValueError, UnicodeError) as e:  # what an argument can still provoke: the model may fix it
        raise ModelRetry(f'{type(e).__name__}: {e}'[:2000]) from e


def _checked(fn: Callable[[], T]) -> T:
    """`fn()` checking a tool's arguments: its `WorkspaceError` becomes the model's `ModelRetry`."""
    try:
        return fn()
    except WorkspaceError as e:
        raise ModelRetry(str(e)) from e


async def list_files(ctx: RunContext[RunDeps], pattern: str = '*') -> list[str]:
    """List the workspace's files (relative paths) matching a glob pattern such as '*.py'."""

    async def go() -> list[str]:
        return workspace_of(ctx).list_files(pattern)

    return await _guarded(go)


async def read_file(ctx: RunContext[RunDeps], path: str) -> str:
    """Read a text file of the workspace, by its relative path."""

    async def go() -> str:
        return workspace_of(ctx).read_text(path)

    return await _guarded(go)


async def search_files(ctx: RunContext[RunDeps], query: str) -> list[str]:
    """Find lines containing `query` in the workspace's files, as 'path:line: text'."""

    async def go() -> list[str]:
        return workspace_of(ctx).search(query)

    return await _guarded(go)


async def write_file(ctx: RunContext[RunDeps], path: str, content: str) -> str:
    """Write (create or replace) a text file of the workspace, by its relative path."""
    ws = workspace_of(ctx)
    _checked(lambda: ws.check_write(path, content))  # refuse bad arguments before anything is journaled

    async def act() -> str:
        n = ws.write_text(path, content)
        return f'wrote {n} characters to {path}'

    return await _guarded(lambda: side_effect_step('proctor.write_file', act))


async def run_command(ctx: RunContext[RunDeps], command: str) -> str:
    """Run a command (no shell) in the workspace, with a timeout; returns its exit code and output."""
    ws = workspace_of(ctx)
    _checked(lambda: argv_of(command))

    async def act() -> str:
        return (await _run_command(command, cwd=ws.root)).summary()

    return await _guarded(lambda: side_effect_step('proctor.run_command', act))


async def run_tests(ctx: RunContext[RunDeps], target: str = '') -> str:
    """Run the workspace's tests with pytest (optionally one file or test id); returns the outcome."""
    ws = workspace_of(ctx)
    argv = ['pytest', '-q', '-p', 'no:cacheprovider'] + ([target] if target.strip() else [])
    if target.strip():
        _checked(lambda: (check_text('test target', target), ws.resolve(target.split('::')[0])))

    async def act() -> str:
        return (await _run_command(argv, cwd=ws.root)).summary()

    return await _guarded(lambda: side_effect_step('proctor.run_tests', act))
