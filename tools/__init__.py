"""Tools specialists use: sandboxed workspace files and commands (with limits)."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

#: Public name -> the submodule that defines it; imported on first access (PEP 562) so that
#: `import proctor.tools` stays cheap and each name pulls in only what it needs.
_LAZY = {
    'CommandResult': '._command',
    'list_files': '._files',
    'read_file': '._files',
    'run_command': '._files',
    'run_tests': '._files',
    'search_files': '._files',
    'workspace_of': '._files',
    'write_file': '._files',
    'Workspace': '._workspace',
}


from .._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
