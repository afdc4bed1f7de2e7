"""docs/config.md names every `proctor.toml` key the config readers accept and every `PROCTOR_*` /
`OTEL_*` environment variable the code reads, so a key added to a reader without documentation fails here.

The keys come from the readers themselves: the fields of the pydantic schemas of `[models]`, `[policy]`
and `[budgets]`, the allowed-key sets and guard constructors behind `[guardrails]`, the keys
`[operators.<name>]` accepts, the embedded model's settings; the variables from a grep of the code.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from proctor.guardrails import _config as guard_config
from proctor.guardrails._data_class import DataClassGuard
from proctor.guardrails._injection import InjectionGuard
from proctor.guardrails._pii import PII_KINDS, PIIGuard
from proctor.guardrails._policy import ApprovalRule
from proctor.guardrails._protocol import HOOKS
from proctor.guardrails._tools import ToolPolicy
from proctor.models import _config as model_config
from proctor.models._local_model import LocalModelSettings
from proctor.models._registry import ModelInfo

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / 'docs' / 'config.md').read_text(encoding='utf-8')
SKIP_DIRS = {'.venv', 'build', 'docs', 'proctor.egg-info'}


def _code_names() -> set[str]:
    """Every name docs/config.md writes as code: in inline code (`key`, `[models.<id>]`, `PROCTOR_STATE_DIR=...`) or
    in its fenced examples, split into words. Prose mentions do not count."""
    fences = re.findall(r'^```[a-z]*\n(.*?)^```', DOC, re.S | re.M)
    prose = re.sub(r'^```[a-z]*\n.*?^```', '', DOC, flags=re.S | re.M)
    code = ' '.join([*fences, *re.findall(r'`([^`\n]+)`', prose)])
    return set(re.findall(r'[A-Za-z_][A-Za-z0-9_]*', code))


DOCUMENTED = _code_names()


def _fields(model: type) -> set[str]:
    return set(model.model_fields)  # type: ignore[attr-defined]


def _kwargs(fn: object) -> set[str]:
    return {n for n, p in inspect.signature(fn).parameters.items() if n != 'self' and p.kind is p.KEYWORD_ONLY}  # type: ignore[arg-type]


def _operator_keys() -> set[str]:
    """The keys `[operators.<name>]` accepts, read from the console's reader (`set(table) - {...}`)."""
    src = (ROOT / 'console' / '_auth.py').read_text(encoding='utf-8')
    found = re.search(r'set\(table\) - \{([^}]*)\}', src)
    assert found, 'console/_auth.py no longer lists the keys of [operators.NAME] as `set(table) - {...}`'
    return set(re.findall(r"'([a-z_0-9]+)'", found.group(1)))


TOML_KEYS: dict[str, set[str]] = {
    'top-level tables': {*model_config._SECTIONS, 'guardrails', 'operators'},
    '[models.<id>]': _fields(ModelInfo),
    '[policy]': _fields(model_config.RoutingPolicy),
    '[policy.specialists.<name>]': _fields(model_config.SpecialistPolicy),
    '[policy.capabilities.<name>]': _fields(model_config.CapabilitySelect),
    '[[policy.rules]]': _fields(model_config.RoutingRule),
    '[evals]': _fields(model_config.EvalsConfig),
    '[budgets.<level>.<name>]': _fields(model_config.BudgetSpec),
    '[budgets] levels': _fields(model_config._Budgets),
    '[guardrails]': set(guard_config._SECTIONS),
    '[guardrails] pii': _kwargs(PIIGuard.__init__) | set(PII_KINDS),
    '[guardrails] injection': _kwargs(InjectionGuard.__init__),
    '[guardrails] input_size (hooks)': set(HOOKS),
    '[guardrails.tools]': _kwargs(ToolPolicy.__init__),
    '[guardrails.data_class]': _kwargs(DataClassGuard.__init__),
    '[[guardrails.approvals]]': set(guard_config._RULE_KEYS),
    '[operators.<name>]': _operator_keys(),
    'embedded model settings': {k for k in LocalModelSettings.__annotations__ if k.startswith('local_')},
}


def test_the_readers_were_found() -> None:
    # a reader renamed or emptied would make the checks below pass vacuously
    assert {'model', 'base_url', 'data_classes', 'region'} <= TOML_KEYS['[models.<id>]']
    assert {'preferred', 'fallback', 'escalate'} <= TOML_KEYS['[policy.specialists.<name>]']
    assert {'tool', 'args', 'role', 'on_reject'} <= TOML_KEYS['[[guardrails.approvals]]']
    assert TOML_KEYS['[operators.<name>]'] == {'token_sha256', 'roles'}
    assert set(guard_config._RULE_KEYS) <= {f.name for f in ApprovalRule.__dataclass_fields__.values()}


@pytest.mark.parametrize('table', sorted(TOML_KEYS))
def test_every_key_the_readers_accept_is_documented(table: str) -> None:
    missing = sorted(TOML_KEYS[table] - DOCUMENTED)
    assert not missing, f'docs/config.md does not mention these keys of {table}: {missing}'


def _env_vars_read() -> dict[str, list[str]]:
    """`PROCTOR_*` and `OTEL_*` names in the package's code, tests, benchmarks and examples, with where."""
    found: dict[str, list[str]] = {}
    for path in ROOT.rglob('*.py'):
        rel = path.relative_to(ROOT)
        if SKIP_DIRS.intersection(rel.parts[:1]):
            continue
        for name in re.findall(r'\b((?:PROCTOR|OTEL)_[A-Z0-9_]*[A-Z0-9])\b', path.read_text(encoding='utf-8')):
            found.setdefault(name, []).append(str(rel))
    return found


ENV = _env_vars_read()


def test_the_grep_finds_the_environment_variables() -> None:
    assert {'PROCTOR_STATE_DIR', 'PROCTOR_DATABASE_URL', 'OTEL_EXPORTER_OTLP_ENDPOINT'} <= set(ENV)


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    missing = {name: sorted(set(where))[:3] for name, where in ENV.items() if name not in DOCUMENTED}
    assert not missing, f'docs/config.md does not mention these environment variables: {missing}'
