"""Evaluation suites in files (`evals/<suite>.toml`, or `.yaml`): what a specialist must get right.

```toml
suite = "triage"                          # default: the file's stem
specialist = "triage"                     # or: capability = "classification"
instructions = "Answer with one word: billing, bug or question."
data_class = "internal"                   # default data class of the cases
checks = [{ regex = "^(billing|bug|question)$" }]   # applied to every case

[[cases]]
name = "double-charge"
input = "I was charged twice this month."
checks = [{ exact = "billing" }]

[[cases]]
name = "crash"
input = "The app crashes when I export."
data_class = "confidential"
checks = [
  { contains = "bug", ignore_case = true },
  { json_schema = { type = "object", required = ["category"] } },
  { output_type = "myapp.types:Triage" },          # pydantic model (or any type) the output must parse as
  { python = "myapp.checks:names_the_cause" },      # fn(output, case) -> bool | float | (bool|float, reason)
  { judge = "strong", rubric = "Names the likely cause.", min_score = 0.7 },
]
```

A check's score is in [0, 1]; a case passes when every check passes, and its score is the mean of
its checks' scores. The judge is a registry model, approved for the case's data class under the
routing policy (checked before anything runs). Every error is a `ConfigError` naming the file and
the key (`cases[2].checks[0].python`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from ..core._callables import positional_arity as _arity
from ..core._data_classes import DATA_CLASSES
from ..exceptions import ConfigError

__all__ = ('Check', 'CheckResult', 'EvalCase', 'EvalSuite', 'load_suite', 'find_suite', 'CHECK_KINDS')

CheckKind = Literal['exact', 'contains', 'regex', 'json_schema', 'output_type', 'python', 'judge']
CHECK_KINDS = ('exact', 'contains', 'regex', 'json_schema', 'output_type', 'python', 'judge')
_CHECK_OPTIONS = {
    'exact': {'ignore_case'},
    'contains': {'ignore_case'},
    'regex': set(),
    'json_schema': set(),
    'output_type': set(),
    'python': {'min_score'},
    'judge': {'rubric', 'min_score'},
}
_SUITE_KEYS = {'suite', 'specialist', 'capability', 'description', 'instructions', 'data_class', 'checks', 'cases'}
_CASE_KEYS = {'name', 'input', 'data_class', 'checks', 'metadata'}


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict on one output."""

    check: str
    passed: bool
    score: float
    reason: str = ''

    def to_json(self) -> dict[str, Any]:
        return {'check': self.check, 'passed': self.passed, 'score': round(self.score, 4), 'reason': self.reason}


@dataclass(frozen=True)
class Check:
    """One check of a case: `kind` (one of `CHECK_KINDS`), its value and options."""

    kind: CheckKind
    value: Any
    key: str  # where it is written ('cases[1].checks[0]'), for errors
    options: dict[str, Any] = field(default_factory=dict)
    target: Any = None  # the imported function / type, the compiled regex

    @property
    def label(self) -> str:
        v = self.value if isinstance(self.value, str) else json.dumps(self.value, sort_keys=True)
        return f'{self.kind}:{v[:60]}'

    @property
    def judges(self) -> tuple[str, ...]:
        """Judge model ids, in preference order (the first approved for the case's class judges it)."""
        return (self.value,) if isinstance(self.value, str) else tuple(self.value)

    def run(self, output: str, case: EvalCase) -> CheckResult:
        """Every check but the judge (which needs a model: the runner calls it)."""
        k, v = self.kind, self.value
        if k == 'exact':
            got, want = output.strip(), str(v).strip()
            if self.options.get('ignore_case'):
                got, want = got.lower(), want.lower()
            ok = got == want
            return CheckResult(self.label, ok, float(ok), '' if ok else f'expected {want!r}, got {got[:80]!r}')
        if k == 'contains':
            got, want = output, str(v)
            if self.options.get('ignore_case'):
                got, want = got.lower(), want.lower()
            ok = want in got
            return CheckResult(self.label, ok, float(ok), '' if ok else f'{want!r} not in the output')
        if k == 'regex':
            ok = self.target.search(output) is not None
            return CheckResult(self.label, ok, float(ok), '' if ok else f'no match for /{v}/')
        if k == 'json_schema':
            import jsonschema

            try:
                jsonschema.validate(json.loads(output), v)
            except ValueError as e:
                return CheckResult(self.label, False, 0.0, f'not JSON: {e}')
            except jsonschema.ValidationError as e:
                return CheckResult(self.label, False, 0.0, f'schema: {e.message}')
            return CheckResult(self.label, True, 1.0)
        if k == 'output_type':
            from pydantic import TypeAdapter, ValidationError

            try:
                TypeAdapter(self.target).validate_json(output)
            except ValidationError as e:
                first = e.errors()[0]
                where = '.'.join(str(p) for p in first['loc'])
                return CheckResult(self.label, False, 0.0, f'{where + ": " if where else ""}{first["msg"]}')
            return CheckResult(self.label, True, 1.0)
        if k == 'python':
            return self._python(output, case)
        raise AssertionError(f'check {k} is run by the runner')

    def _python(self, output: str, case: EvalCase) -> CheckResult:
        fn: Callable[..., Any] = self.target
        try:
            got = fn(output, case) if _arity(fn) >= 2 else fn(output)
        except Exception as e:
            return CheckResult(self.label, False, 0.0, f'{self.value} raised {type(e).__name__}: {e}'[:300])
        return self.verdict(got)

    def verdict(self, got: Any) -> CheckResult:
        """A check function's (or judge's) answer as a result: bool, a score, or (either, reason)."""
        reason = ''
        if isinstance(got, CheckResult):
            return got
        if isinstance(got, tuple) and len(got) == 2:
            got, reason = got
        min_score = float(self.options.get('min_score', 0.5))
        if isinstance(got, bool):
            return CheckResult(self.label, got, float(got), str(reason))
        if isinstance(got, (int, float)):
            score = min(max(float(got), 0.0), 1.0)
            return CheckResult(self.label, score >= min_score, score, str(reason))
        return CheckResult(self.label, False, 0.0, f'{self.value} returned {type(got).__name__}, not bool or a score')


@dataclass(frozen=True)
class EvalCase:
    name: str
    input: str
    data_class: str
    checks: tuple[Check, ...]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalSuite:
    name: str
    subject: str  # the specialist (or capability) evaluated
    subject_kind: Literal['specialist', 'capability']
    instructions: str | None
    cases: tuple[EvalCase, ...]
    path: str | None = None
    digest: str = ''
    description: str = ''

    @property
    def data_classes(self) -> list[str]:
        return list(dict.fromkeys(c.data_class for c in self.cases))

    @property
    def judges(self) -> set[str]:
        return {j for c in self.cases for ch in c.checks if ch.kind == 'judge' for j in ch.judges}


def import_object(spec: Any, *, file: str | None, key: str, what: str) -> Any:
    if not isinstance(spec, str) or spec.count(':') != 1 or not all(spec.split(':')):
        raise ConfigError(f'{what} must be "module:name", not {spec!r}', file=file, key=key)
    module, name = spec.split(':')
    try:
        mod = importlib.import_module(module)
    except Exception as e:
        raise ConfigError(f'cannot import module {module!r}: {type(e).__name__}: {e}', file=file, key=key) from None
    obj = mod
    for part in name.split('.'):
        if not hasattr(obj, part):
            raise ConfigError(f'module {module!r} has no {name!r}', file=file, key=key)
        obj = getattr(obj, part)
    return obj


def _check(raw: Any, *, file: str | None, key: str) -> Check:
    if not isinstance(raw, dict):
        raise ConfigError(
            f'a check is a table like {{ contains = "..." }}, not {type(raw).__name__}', file=file, key=key
        )
    kinds = [k for k in raw if k in CHECK_KINDS]
    if len(kinds) != 1:
        found = f'{" and ".join(kinds)}' if kinds else 'none'
        raise ConfigError(f'a check has exactly one of {", ".join(CHECK_KINDS)} (found {found})', file=file, key=key)
    kind = kinds[0]
    value = raw[kind]
    options = {k: v for k, v in raw.items() if k != kind}
    for opt in options:
        if opt not in _CHECK_OPTIONS[kind]:
            allowed = ', '.join(sorted(_CHECK_OPTIONS[kind])) or 'none'
            raise ConfigError(
                f'unknown option {opt!r} for a {kind} check (options: {allowed})', file=file, key=f'{key}.{opt}'
            )
    target: Any = None
    k = f'{key}.{kind}'
    if kind in ('exact', 'contains', 'regex') and not isinstance(value, str):
        raise ConfigError(f'{kind} must be a string', file=file, key=k)
    if kind == 'regex':
        try:
            target = re.compile(value)
        except re.error as e:
            raise ConfigError(f'invalid regular expression: {e}', file=file, key=k) from None
    elif kind == 'json_schema':
        if not isinstance(value, dict):
            raise ConfigError('json_schema must be a table (a JSON schema)', file=file, key=k)
        import jsonschema
        from jsonschema.validators import validator_for

        try:
            validator_for(value).check_schema(value)
        except jsonschema.SchemaError as e:
            raise ConfigError(f'invalid JSON schema: {e.message}', file=file, key=k) from None
    elif kind == 'output_type':
        target = import_object(value, file=file, key=k, what='output_type')
        from pydantic import TypeAdapter

        try:
            TypeAdapter(target)
        except Exception as e:
            raise ConfigError(f'{value} is not a type pydantic can validate: {e}'[:300], file=file, key=k) from None
    elif kind == 'python':
        target = import_object(value, file=file, key=k, what='a python check')
        if not callable(target):
            raise ConfigError(f'{value} is not callable', file=file, key=k)
    elif kind == 'judge':
        if not (isinstance(value, str) and value) and not (
            isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
        ):
            raise ConfigError('judge must be a registry model id (or a list of them)', file=file, key=k)
        if not isinstance(options.get('rubric'), str) or not options['rubric'].strip():
            raise ConfigError('a judge needs rubric = "what a good answer does"', file=file, key=f'{key}.rubric')
    for opt in ('min_score',):
        if opt in options and (not isinstance(options[opt], (int, float)) or not 0 <= options[opt] <= 1):
            raise ConfigError('min_score must be a number from 0 to 1', file=file, key=f'{key}.{opt}')
    if 'ignore_case' in options and not isinstance(options['ignore_case'], bool):
        raise ConfigError('ignore_case must be true or false', file=file, key=f'{key}.ignore_case')
    return Check(
        cast(CheckKind, kind),
        value if kind != 'judge' or isinstance(value, str) else tuple(value),
        key,
        options,
        target,
    )


def _checks(raw: Any, *, file: str | None, key: str) -> list[Check]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError('checks must be a list of tables ([{ contains = "..." }, ...])', file=file, key=key)
    return [_check(c, file=file, key=f'{key}[{i}]') for i, c in enumerate(raw)]


def _data_class(value: Any, *, file: str | None, key: str) -> str:
    if value not in DATA_CLASSES:
        raise ConfigError(f'unknown data class {value!r} (one of {", ".join(DATA_CLASSES)})', file=file, key=key)
    return value


def parse_suite(data: Any, *, name: str, file: str | None = None, digest: str = '') -> EvalSuite:
    """A suite from its parsed file (a dict); `name` is the default suite name (the file's stem)."""
    if not isinstance(data, dict):
        raise ConfigError('a suite file is a table (suite = ..., [[cases]])', file=file)
    for k in data:
        if k not in _SUITE_KEYS:
            raise ConfigError(f'unknown key (keys: {", ".join(sorted(_SUITE_KEYS))})', file=file, key=str(k))
    suite = data.get('suite', name)
    if not isinstance(suite, str) or not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9._-]{0,199}', suite):
        raise ConfigError('suite must be a name of letters, digits, ".", "_" or "-"', file=file, key='suite')
    if 'specialist' in data and 'capability' in data:
        raise ConfigError('name a specialist or a capability, not both', file=file, key='capability')
    kind: Literal['specialist', 'capability'] = 'capability' if 'capability' in data else 'specialist'
    subject = data.get(kind, suite)
    if not isinstance(subject, str) or not subject:
        raise ConfigError(f'{kind} must be a non-empty string', file=file, key=kind)
    instructions = data.get('instructions')
    if instructions is not None and not isinstance(instructions, str):
        raise ConfigError('instructions must be a string', file=file, key='instructions')
    default_dc = _data_class(data.get('data_class', 'internal'), file=file, key='data_class')
    common = _checks(data.get('checks'), file=file, key='checks')
    raw_cases = data.get('cases')
    if raw_cases is None or raw_cases == []:
        raise ConfigError('the suite has no cases: add [[cases]] tables', file=file, key='cases')
    if not isinstance(raw_cases, list):
        raise ConfigError('cases must be a list of tables ([[cases]])', file=file, key='cases')
    cases: list[EvalCase] = []
    seen: set[str] = set()
    for i, rc in enumerate(raw_cases):
        key = f'cases[{i}]'
        if not isinstance(rc, dict):
            raise ConfigError('a case is a table ([[cases]])', file=file, key=key)
        for k in rc:
            if k not in _CASE_KEYS:
                raise ConfigError(f'unknown key (keys: {", ".join(sorted(_CASE_KEYS))})', file=file, key=f'{key}.{k}')
        if not isinstance(rc.get('input'), str) or not rc['input']:
            raise ConfigError('a case needs input = "..." (the task given to the model)', file=file, key=f'{key}.input')
        cname = rc.get('name', f'case-{i + 1}')
        if not isinstance(cname, str) or not cname:
            raise ConfigError('name must be a non-empty string', file=file, key=f'{key}.name')
        if cname in seen:
            raise ConfigError(f'two cases are named {cname!r}', file=file, key=f'{key}.name')
        seen.add(cname)
        dc = _data_class(rc.get('data_class', default_dc), file=file, key=f'{key}.data_class')
        checks = [*common, *_checks(rc.get('checks'), file=file, key=f'{key}.checks')]
        if not checks:
            raise ConfigError(
                'the case has no checks (and the suite none for every case)', file=file, key=f'{key}.checks'
            )
        meta = rc.get('metadata', {})
        if not isinstance(meta, dict):
            raise ConfigError('metadata must be a table', file=file, key=f'{key}.metadata')
        cases.append(EvalCase(cname, rc['input'], dc, tuple(checks), meta))
    return EvalSuite(
        name=suite,
        subject=subject,
        subject_kind=kind,
        instructions=instructions,
        cases=tuple(cases),
        path=file,
        digest=digest,
        description=str(data.get('description', '')),
    )


def load_suite(path: str | Path) -> EvalSuite:
    """Parse and validate one suite file (`.toml`, `.yaml` or `.yml`)."""
    p = Path(path)
    file = str(p)
    if not p.is_file():
        raise ConfigError('suite file not found' if not p.exists() else 'not a file', file=file)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f'cannot read: {e.strerror}', file=file) from None
    digest = hashlib.sha256(raw).hexdigest()
    if p.suffix in ('.yaml', '.yml'):
        try:
            import yaml
        except ImportError:
            raise ConfigError(
                'YAML suites need PyYAML (pip install pyyaml), or write the suite as TOML', file=file
            ) from None
        try:
            data = yaml.safe_load(raw.decode())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f'invalid YAML: {" ".join(str(e).split())}', file=file) from None
    else:
        try:
            data = tomllib.loads(raw.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f'invalid TOML: {e}', file=file) from None
    return parse_suite(data, name=p.stem, file=file, digest=digest)


def find_suite(name_or_path: str, evals_dir: str | Path) -> Path:
    """A suite file: an existing path as given, else `<evals_dir>/<name>.toml|.yaml|.yml`."""
    p = Path(name_or_path)
    if p.suffix in ('.toml', '.yaml', '.yml') or p.exists():
        return p
    d = Path(evals_dir)
    for ext in ('.toml', '.yaml', '.yml'):
        if (d / f'{name_or_path}{ext}').is_file():
            return d / f'{name_or_path}{ext}'
    known = sorted(f.stem for f in d.glob('*') if f.suffix in ('.toml', '.yaml', '.yml')) if d.is_dir() else []
    where = f'in {d}' + (f' (suites there: {", ".join(known)})' if known else ' (no suites there)')
    raise ConfigError(f'no suite {name_or_path!r} {where}', file=str(d / f'{name_or_path}.toml'))
