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


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
