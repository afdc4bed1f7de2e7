"""A sandboxed workspace folder: every path a tool touches must stay inside it.

Rejected: absolute paths, `..` segments that climb out, and symlinks whose target is outside.
Errors are `WorkspaceError`s naming the path; as tool errors the model sees them and may retry.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import WorkspaceError

__all__ = ('Workspace',)

#: Files larger than this are returned truncated (the model never needs megabytes of one file).
MAX_READ_BYTES = 64_000
MAX_WRITE_BYTES = 1_000_000
_SKIP_DIRS = {'.git', '.venv', 'venv', '__pycache__', 'node_modules', '.proctor', '.pytest_cache'}


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
            raise WorkspaceError('path must be a non-empty relative path', path=str(rel))
        rel = rel.strip()
        if os.path.isabs(rel) or rel.startswith('~'):
            raise WorkspaceError(f'path {rel!r} is absolute; use a path relative to the workspace', path=rel)
        candidate = (self.root / rel).resolve()  # follows symlinks, so a link pointing out is caught
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
        if not path.is_file():
            raise WorkspaceError(f'no file {rel!r} in the workspace', path=rel)
        data = path.read_bytes()
        text = data[:MAX_READ_BYTES].decode('utf-8', errors='replace')
        if len(data) > MAX_READ_BYTES:
            text += f'\n[... truncated: {len(data)} bytes in all]'
        return text

    def write_text(self, rel: str, content: str) -> int:
        if len(content.encode()) > MAX_WRITE_BYTES:
            raise WorkspaceError(f'refusing to write {rel!r}: over {MAX_WRITE_BYTES} bytes', path=rel)
        path = self.resolve(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f'.{path.name}.proctor-tmp')
        tmp.write_text(content, encoding='utf-8')
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written file
        return len(content)

    def search(self, query: str, *, max_hits: int = 50) -> list[str]:
        """Lines containing `query` (case-insensitive), as `path:line: text`."""
        if not query.strip():
            raise WorkspaceError('search query is empty')
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
