"""Tools specialists use: sandboxed workspace files and commands (with limits)."""

from ._command import CommandResult
from ._files import list_files, read_file, run_command, run_tests, search_files, workspace_of, write_file
from ._workspace import Workspace

__all__ = (
    'CommandResult',
    'Workspace',
    'list_files',
    'read_file',
    'run_command',
    'run_tests',
    'search_files',
    'workspace_of',
    'write_file',
)
