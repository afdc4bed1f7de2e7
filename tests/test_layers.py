"""The package imports one way: every module imports only its own folder or a lower layer, and no two
modules import each other, not even through a function-local or `TYPE_CHECKING` import.

Layers, lowest first (a folder may import any folder listed before it, never one after it):

    core (core/, exceptions.py, _log.py, _lazy.py) -> state -> models -> tracing -> guardrails -> tools
    -> memory -> agents -> orchestrator -> console -> cli -> the package root (__init__, __main__, testing)
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Lowest first. A module in layer N may import layers 0..N.
LAYERS = (
    'core',
    'state',
    'models',
    'tracing',
    'guardrails',
    'tools',
    'memory',
    'agents',
    'orchestrator',
    'console',
    'cli',
    'root',
)
CORE_FILES = {'exceptions', '_log', '_lazy'}
SKIP_DIRS = {'tests', 'benchmarks', 'examples', '.venv', 'docs', 'proctor.egg-info', 'build'}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix('').parts
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(('proctor', *parts))


def _layer(module: str) -> str:
    parts = module.split('.')
    if len(parts) == 1:
        return 'root'
    head = parts[1]
    if head in CORE_FILES:
        return 'core'
    if head in LAYERS:
        return head
    return 'root'  # __main__, testing


def _type_only(tree: ast.AST) -> set[ast.AST]:
    """The import statements under `if TYPE_CHECKING:` (annotations only: never executed)."""
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, 'id', getattr(node.test, 'attr', None)) == 'TYPE_CHECKING':
            found.update(n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return found


def _imports(path: Path, module: str, *, type_only: bool = True) -> set[str]:
    """Every proctor module `path` imports, wherever the import statement sits (without the
    `TYPE_CHECKING` ones when `type_only` is false)."""
    package = module if path.name == '__init__.py' else module.rsplit('.', 1)[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = set() if type_only else _type_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                target = '.'.join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ''
            found.add(target)
            # `from . import x` / `from .pkg import sub` may name a submodule
            found.update(f'{target}.{alias.name}' for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) in ('lazy_module', 'import_module')
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)  # `lazy_module('proctor.state._store')`: an import all the same
    return {name for name in found if name == 'proctor' or name.startswith('proctor.')}


def _graph(*, type_only: bool = True) -> dict[str, set[str]]:
    sources = {
        _module_name(path): path
        for path in ROOT.rglob('*.py')
        if not SKIP_DIRS.intersection(path.relative_to(ROOT).parts[:1])
    }
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in sources.items():
        graph[module] = {
            name for name in _imports(path, module, type_only=type_only) if name in sources and name != module
        }
    return graph


GRAPH = _graph()
#: Without the `TYPE_CHECKING` imports: what runs when a module is imported or a function called.
RUNTIME_GRAPH = _graph(type_only=False)


def test_the_analyzer_sees_the_package() -> None:
    # a broken walk would make every check below pass vacuously
    assert 'proctor.orchestrator._team' in GRAPH
    assert 'proctor.state._store' in GRAPH['proctor.orchestrator._team']
    assert len(GRAPH) > 60


def test_no_module_imports_a_higher_layer() -> None:
    upward = sorted(
        f'{module} ({_layer(module)}) imports {target} ({_layer(target)})'
        for module, targets in GRAPH.items()
        for target in targets
        if LAYERS.index(_layer(target)) > LAYERS.index(_layer(module))
    )
    assert not upward, 'upward imports:\n' + '\n'.join(upward)


def test_no_import_cycles() -> None:
    # Package __init__ files only re-export their own submodules (lazily), so edges out of them are
    # not part of a cycle a reader has to untangle; nor are annotations (`TYPE_CHECKING` imports) inside
    # one folder. A function-local import counts: it is the usual way a cycle hides.
    graph = {m: {t for t in ts if not _is_package(t) or t == 'proctor'} for m, ts in RUNTIME_GRAPH.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, 'import cycles:\n' + '\n'.join(' -> '.join(c) for c in cycles)


def _is_package(module: str) -> bool:
    return (ROOT.joinpath(*module.split('.')[1:]) / '__init__.py').exists()


@pytest.mark.parametrize('layer', LAYERS[:-1])
def test_every_layer_has_modules(layer: str) -> None:
    assert any(_layer(m) == layer for m in GRAPH), f'no module found in layer {layer!r}'


def test_no_module_rebinds_its_globals_at_run_time():
    # process-wide state lives in objects a reader can find (a registry, an engine dataclass), not in
    # module globals rebound by a function
    found = sorted(
        f'{path.relative_to(ROOT)}:{node.lineno} global {", ".join(node.names)}'
        for path in ROOT.rglob('*.py')
        if not SKIP_DIRS.intersection(path.relative_to(ROOT).parts[:1])
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Global)
    )
    assert not found, 'global statements:\n' + '\n'.join(found)
