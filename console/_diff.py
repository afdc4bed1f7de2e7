"""What a pending file write would change: the proposed content against the file now in the run's workspace."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import WorkspaceError
from ..tools._workspace import Workspace

__all__ = ('FileDiff', 'DiffLine', 'file_write_diff', 'WRITE_TOOLS')

#: Tools whose arguments are (path, content) writes into the workspace.
WRITE_TOOLS = frozenset({'write_file', 'proctor.write_file'})
MAX_DIFF_LINES = 2000


@dataclass
class DiffLine:
    kind: str  # add|del|ctx|hunk|meta
    text: str


@dataclass
class FileDiff:
    path: str
    new_file: bool
    lines: list[DiffLine] = field(default_factory=list)
    note: str | None = None  # why there is no diff (no workspace, escaping path, ...)
    added: int = 0
    removed: int = 0


def file_write_diff(tool: str, args: Any, workspace: str | None) -> FileDiff | None:
    """A unified diff for a write-file approval, or None when the tool is not a file write.

    The current file is read through `Workspace.resolve`, so a proposed path that escapes the
    workspace is reported, never read.
    """
    if tool not in WRITE_TOOLS or not isinstance(args, dict):
        return None
    path, content = args.get('path'), args.get('content')
    if not isinstance(path, str) or not isinstance(content, str):
        return None
    diff = FileDiff(path=path, new_file=False)
    current = ''
    if not workspace:
        diff.note = 'the run has no workspace: showing the proposed content only'
        diff.new_file = True
    else:
        try:
            target = Workspace.open(workspace).resolve(path)
            if target.is_file():
                current = target.read_text(encoding='utf-8', errors='replace')
            else:
                diff.new_file = True
        except WorkspaceError as e:
            diff.note = f'not compared with the workspace: {e}'
            diff.new_file = True
    old_name = '/dev/null' if diff.new_file else f'a/{path}'
    lines = list(
        difflib.unified_diff(
            current.splitlines(), content.splitlines(), fromfile=old_name, tofile=f'b/{path}', lineterm='', n=3
        )
    )
    for raw in lines[:MAX_DIFF_LINES]:
        if raw.startswith(('---', '+++')):
            kind = 'meta'
        elif raw.startswith('@@'):
            kind = 'hunk'
        elif raw.startswith('+'):
            kind = 'add'
            diff.added += 1
        elif raw.startswith('-'):
            kind = 'del'
            diff.removed += 1
        else:
            kind = 'ctx'
        diff.lines.append(DiffLine(kind, raw))
    if len(lines) > MAX_DIFF_LINES:
        diff.lines.append(DiffLine('meta', f'... {len(lines) - MAX_DIFF_LINES} more lines'))
    if not lines:
        diff.note = diff.note or 'no change: the proposed content equals the current file'
    return diff
