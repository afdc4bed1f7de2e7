"""A sandboxed workspace folder: every path a tool touches must stay inside it.

Rejected: absolute paths, `..` segments that climb out, and symlinks whose target is outside;
paths with a NUL byte, that are not valid text (unpaired surrogates), or too long for the file
system. Every error, an operating system error included, is a `WorkspaceError` naming the path; as
tool errors the model sees them and may retry (`proctor.tools._files`).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import WorkspaceError

__all__ = ('Workspace', 'check_text')

#: Files larger than this are returned truncated (the model never needs megabytes of one file).
MAX_READ_BYTES = 64_000
MAX_WRITE_BYTES = 1_000_000
#: Longest path and path segment accepted (bytes, UTF-8): Linux's PATH_MAX and NAME_MAX.
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
_SKIP_DIRS = {'.git', '.venv', 'venv', '__pycache__', 'node_modules', '.proctor', '.pytest_cache'}


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + '...')


def _why(e: BaseException) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__


def check_text(what: str, text: str) -> str:
    """`text` (a tool argument), or a `WorkspaceError` if no file name or command can hold it: a NUL
    byte, or characters with no UTF-8 form (unpaired surrogates)."""
    if '\x00' in text:
        raise WorkspaceError(f'{what} {_short(text)} contains a NUL byte', path=text[:200])
    try:
        text.encode()
    except UnicodeEncodeError as e:
        raise WorkspaceError(f'{what} {_short(text)} is not valid text: {e.reason} at {e.start}', path=None) from e
    return text


@dataclass(frozen=True)
class Workspace:
    """A folder the research, coding and review specialists may read and (coding) write."""

    root: Path

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> Workspace:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise WorkspaceError(f'workspace {str(path)!r} does not exist or is not a folder', path=str(path))
        return cls(path.resolve())

    def resolve(self, rel: str) -> Path:
        """The real path of `rel` inside the workspace, or `WorkspaceError`."""
        if not isinstance(rel, str) or not rel.strip():
            raise WorkspaceError('path must be a non-empty relative path', path=str(rel)[:200])
        rel = rel.strip()
        check_text('path', rel)
        data = rel.encode()
        if len(data) > MAX_PATH_BYTES or any(len(part) > MAX_NAME_BYTES for part in data.split(b'/')):
            raise WorkspaceError(
                f'path {_short(rel)} is too long (at most {MAX_PATH_BYTES} bytes, {MAX_NAME_BYTES} per name)',
                path=rel[:200],
            )
        if os.path.isabs(rel) or rel.startswith('~'):
            raise WorkspaceError(f'path {rel!r} is absolute; use a path relative to the workspace', path=rel)
        try:
            candidate = (self.root / rel).resolve()  # follows symlinks, so a link pointing out is caught
        except (OSError, RuntimeError, ValueError) as e:
            raise WorkspaceError(f'path {rel!r} cannot be used: {_why(e)}', path=rel) from e
        if candidate != self.root and self.root not in candidate.parents:
            raise WorkspaceError(f'path {rel!r} escapes the workspace', path=rel)
        return candidate

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def list_files(self, pattern: str = '*') -> list[str]:
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for f in sorted(filenames):
                rel = self.relative(Path(dirpath) / f)
                if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(f, pattern):
                    out.append(rel)
        return out

    def read_text(self, rel: str) -> str:
        path = self.resolve(rel)
        try:
            if not path.is_file():
                raise WorkspaceError(f'no file {rel!r} in the workspace', path=rel)
            data = path.read_bytes()
        except OSError as e:
            raise WorkspaceError(f'cannot read {rel!r}: {_why(e)}', path=rel) from e
        text = data[:MAX_READ_BYTES].decode('utf-8', errors='replace')
        if len(data) > MAX_READ_BYTES:
            text += f'\n[... truncated: {len(data)} bytes in all]'
        return text

    def check_write(self, rel: str, content: str) -> Path:
        """The path `write_text(rel, content)` would write, or the `WorkspaceError` it would raise
        about its arguments (checked before a write is journaled)."""
        if not isinstance(content, str):
            raise WorkspaceError(f'content for {rel!r} must be text', path=str(rel)[:200])
        try:
            size = len(content.encode())
        except UnicodeEncodeError as e:
            raise WorkspaceError(f'content for {rel!r} is not valid text: {e.reason} at {e.start}', path=rel) from e
        if size > MAX_WRITE_BYTES:
            raise WorkspaceError(f'refusing to write {rel!r}: over {MAX_WRITE_BYTES} bytes', path=rel)
        return self.resolve(rel)

    def write_text(self, rel: str, content: str) -> int:
        path = self.check_write(rel, content)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f'.{path.name}.proctor-tmp')
            tmp.write_text(content, encoding='utf-8')
            os.replace(tmp, path)  # atomic: a crash never leaves a half-written file
        except OSError as e:
            raise WorkspaceError(f'cannot write {rel!r}: {_why(e)}', path=rel) from e
        return len(content)

    def search(self, query: str, *, max_hits: int = 50) -> list[str]:
        """Lines containing `query` (case-insensitive), as `path:line: text`."""
        if not query.strip():
            raise WorkspaceError('search query is empty')
        check_text('search query', query)
        q = query.lower()
        hits: list[str] = []
        for rel in self.list_files():
            try:
                text = (self.root / rel).read_text(encoding='utf-8')
            except (UnicodeDecodeError, OSError):
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if q in line.lower():
                    hits.append(f'{rel}:{n}: {line.strip()[:200]}')
                    if len(hits) >= max_hits:
                        return hits
        return hits
