"""Packaging: `import proctor.agents` works and `import agents` does not, installed editable or not;
every public module declares a tuple `__all__`."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import proctor

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    'import importlib.util, proctor, proctor.agents, proctor.orchestrator, proctor.tools;'
    'print(proctor.__file__);'
    'print(importlib.util.find_spec("agents") is None and importlib.util.find_spec("orchestrator") is None)'
)


def _probe(env_path: str | None, cwd: Path) -> list[str]:
    env = {'PATH': '/usr/bin:/bin'}
    if env_path:
        env['PYTHONPATH'] = env_path
    out = subprocess.run([sys.executable, '-c', PROBE], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_editable_install_exposes_only_proctor_names(tmp_path):
    file, no_bare = _probe(None, tmp_path)
    assert Path(file).resolve() == ROOT / '__init__.py'
    assert no_bare == 'True'


@pytest.mark.slow
def test_regular_install_exposes_only_proctor_names(tmp_path):
    target = tmp_path / 'site'
    subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            'install',
            '-q',
            '--no-deps',
            '--no-build-isolation',
            '--target',
            str(target),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    assert not (target / 'agents').exists() and (target / 'proctor' / 'agents' / '__init__.py').exists()
    assert (target / 'proctor' / 'py.typed').exists()
    assert (target / 'proctor' / 'examples' / 'workspace').is_dir()
    file, no_bare = _probe(str(target), tmp_path)
    assert Path(file).parent == target / 'proctor'
    assert no_bare == 'True'


def _public_modules() -> list[str]:
    names = ['proctor']
    for info in pkgutil.walk_packages(proctor.__path__, 'proctor.'):
        last = info.name.rsplit('.', 1)[-1]
        if last.startswith('_') or info.name.split('.')[1] in ('tests', 'examples', 'benchmarks'):
            continue
        names.append(info.name)
    return sorted(set(names))


@pytest.mark.parametrize('name', _public_modules())
def test_public_module_has_tuple_all(name):
    mod = importlib.import_module(name)
    assert isinstance(getattr(mod, '__all__', None), tuple), f'{name} needs a tuple __all__'
    for attr in mod.__all__:
        assert hasattr(mod, attr), f'{name}.__all__ names missing {attr!r}'


def test_import_proctor_does_not_import_heavy_optional_modules():
    code = 'import sys, proctor; print(",".join(m for m in ("chromadb","torch","llama_cpp","sentence_transformers","dbos") if m in sys.modules))'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ''


def test_importing_the_team_api_leaves_the_durable_engine_and_models_for_first_use():
    # What a script needs to build a team loads no SQLAlchemy (the state store loads with the first
    # Team), and not DBOS (the first durable run loads it), Chroma, torch or the embedded model.
    heavy = ('sqlalchemy', 'dbos', 'chromadb', 'torch', 'llama_cpp')
    code = (
        'import sys\n'
        'from proctor import Team, Supervisor, Specialist\n'
        'from proctor.testing import ScriptedModel\n'
        f'print(",".join(m for m in {heavy!r} if m in sys.modules))\n'
        'team = Team(Supervisor(model=ScriptedModel(lambda m: "ok")), [Specialist("w", "Work.", model=ScriptedModel(lambda m: "ok"))],'
        ' durable=False, state_dir=sys.argv[1])\n'
        f'print(",".join(m for m in {heavy!r} if m in sys.modules))\n'
        'print(team.run_sync("go").output)\n'
    )
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, '-c', code, d], capture_output=True, text=True, check=True)
    assert out.stdout.split('\n')[:3] == ['', 'sqlalchemy', 'ok']
