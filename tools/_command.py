"""Running a command (pytest, a linter) in the workspace with a timeout and an output cap."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio

from ..exceptions import WorkspaceError
from ._workspace import check_text

__all__ = ('CommandResult', 'argv_of', 'run_command')

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_OUTPUT_CAP = 8_000
#: Longest command line accepted (a longer one is refused before it is parsed or journaled).
MAX_COMMAND_CHARS = 100_000


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int | None  # None: killed at the timeout
    output: str
    timed_out: bool

    def summary(self) -> str:
        status = 'timed out' if self.timed_out else f'exit code {self.exit_code}'
        return f'$ {self.command}\n[{status}]\n{self.output}'


def argv_of(command: str | list[str]) -> list[str]:
    """The argument vector of `command` as it will run, or a `WorkspaceError` naming what is wrong."""
    if isinstance(command, str):
        if len(command) > MAX_COMMAND_CHARS:
            raise WorkspaceError(f'command is too long ({len(command)} characters, at most {MAX_COMMAND_CHARS})')
        check_text('command', command)
        try:
            argv = shlex.split(command)
        except ValueError as e:  # 'No closing quotation', 'No escaped character'
            raise WorkspaceError(f'command {command[:200]!r} cannot be parsed: {e}') from e
    else:
        argv = [check_text('command argument', a) for a in command]
    if not argv:
        raise WorkspaceError('empty command')
    return argv


def _argv(command: str | list[str]) -> list[str]:
    argv = argv_of(command)
    # `python`/`pytest` mean the interpreter proctor runs on, so tests see the same packages.
    if argv[0] in ('python', 'python3'):
        argv[0] = sys.executable
    elif argv[0] == 'pytest':
        argv[:1] = [sys.executable, '-m', 'pytest']
    return argv


async def run_command(
    command: str | list[str],
    *,
    cwd: Path,
    timeout: float = DEFAULT_TIMEOUT_S,
    output_cap: int = DEFAULT_OUTPUT_CAP,
) -> CommandResult:
    """Run `command` (no shell) in `cwd`; kill it after `timeout` seconds; keep the last `output_cap` chars."""
    argv = _argv(command)
    shown = ' '.join(shlex.quote(a) for a in argv_of(command))
    env = {**os.environ, 'PYTHONDONTWRITEBYTECODE': '1'}
    timed_out = False
    try:
        with anyio.fail_after(timeout):
            proc = await anyio.run_process(argv, cwd=cwd, check=False, stderr=subprocess.STDOUT, env=env)
        out = proc.stdout.decode('utf-8', errors='replace')
        code: int | None = proc.returncode
    except TimeoutError:
        timed_out, out, code = True, '', None
    except FileNotFoundError:
        raise WorkspaceError(f'command not found: {argv[0]!r}', path=argv[0]) from None
    except OSError as e:  # not executable, argument list too long, a name too long
        raise WorkspaceError(f'cannot run {argv[0][:200]!r}: {e.strerror or e}', path=argv[0][:200]) from None
    if len(out) > output_cap:
        out = f'[... {len(out) - output_cap} chars cut]\n' + out[-output_cap:]
    return CommandResult(command=shown, exit_code=code, output=out, timed_out=timed_out)
