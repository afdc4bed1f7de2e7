"""Guardrails and operator roles from `proctor.toml` (the `[guardrails]` and `[operators.*]` tables).

```toml
[guardrails]
pii = true                                  # or a table: kinds, action ('redact'|'block'), hooks, allow
outbound = true                             # secrets/PII in tool-call arguments; or a table: action
                                            # ('block'|'approve'|'stop_run'), role, kinds, read_only, allow
injection = { threshold = 2 }               # or true; action 'quarantine'|'block', hooks
input_size = { input = 100000, tool_call = 200000 }
tool_costs = { run_tests = 0.02 }           # fixed cost estimates for min_cost_usd rules

[guardrails.tools]
allow = { research = ["list_files", "read_file", "search_files"] }
deny = { "*" = ["run_command"] }

[guardrails.data_class]
tools = { web_search = "public" }
memory = "confidential"

[[guardrails.approvals]]
tool = "write_file"
args = { path = "!src/*" }
role = "operator"
expires_after_s = 3600
on_reject = "tell_agent"                    # or "stop_run"
escalate_to = "admin"

[operators.alice]
roles = ["operator", "admin"]               # token_sha256 = "..." signs in to the console
```

Errors are `ConfigError`s naming the file and the key (`guardrails.approvals[0].on_reject`).
The model registry and policy tables of the same file are read elsewhere (`orchestrator`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError

__all__ = ('load_guardrails', 'guardrails_from', 'config_path', 'operator_roles')

_SECTIONS = {'pii', 'outbound', 'injection', 'input_size', 'tools', 'data_class', 'approvals', 'tool_costs'}
_RULE_KEYS = {
    'tool',
    'args',
    'specialist',
    'data_classes',
    'min_cost_usd',
    'role',
    'expires_after_s',
    'on_reject',
    'escalate_to',
    'reason',
}


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Explicit path, else `PROCTOR_CONFIG`, else `proctor.toml` in the working directory."""
    return Path(path or os.environ.get('PROCTOR_CONFIG') or 'proctor.toml')


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise ConfigError('file not found', file=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f'invalid TOML: {e}', file=str(path)) from None


def load_guardrails(path: str | os.PathLike[str] | None = None, *, missing_ok: bool = False) -> list[Any]:
    """The guards the `[guardrails]` table of `path` configures, in a fixed order (size limits,
    tool policy, data class, PII, outbound tool arguments, injection, approvals). An absent table gives an empty list."""
    p = config_path(path)
    if missing_ok and not p.exists():
        return []
    return guardrails_from(_read(p).get('guardrails', {}), file=str(p))


def _table(value: Any, key: str, file: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError('must be a table', file=file, key=key)
    return value


def _build(key: str, file: str, factory: Any, kwargs: Mapping[str, Any]) -> Any:
    try:
        return factory(**kwargs)
    except ConfigError as e:
        raise ConfigError(str(e).split(': ', 1)[-1], file=file, key=e.key if e.key and '.' in e.key else key) from None
    except TypeError as e:
        raise ConfigError(f'bad keys ({e})', file=file, key=key) from None


def guardrails_from(section: Any, *, file: str = 'proctor.toml') -> list[Any]:
    """Build guards from a parsed `[guardrails]` table (see the module docstring)."""
    from ._data_class import DataClassGuard
    from ._injection import InjectionGuard
    from ._limits import InputSizeLimit
    from ._outbound import OutboundGuard
    from ._pii import PIIGuard
    from ._policy import ApprovalPolicy, ApprovalRule
    from ._tools import ToolPolicy

    section = _table(section, 'guardrails', file)
    unknown = set(section) - _SECTIONS
    if unknown:
        raise ConfigError(
            f'unknown keys {sorted(unknown)} (allowed: {", ".join(sorted(_SECTIONS))})', file=file, key='guardrails'
        )
    guards: list[Any] = []
    if 'input_size' in section:
        limits = _table(section['input_size'], 'guardrails.input_size', file)
        guards.append(_build('guardrails.input_size', file, InputSizeLimit, {'limits': dict(limits)}))
    if 'tools' in section:
        t = _table(section['tools'], 'guardrails.tools', file)
        bad = set(t) - {'allow', 'deny'}
        if bad:
            raise ConfigError(f'unknown keys {sorted(bad)} (allowed: allow, deny)', file=file, key='guardrails.tools')
        for k in t:
            _table(t[k], f'guardrails.tools.{k}', file)
        guards.append(_build('guardrails.tools', file, ToolPolicy, dict(t)))
    if 'data_class' in section:
        guards.append(
            _build(
                'guardrails.data_class',
                file,
                DataClassGuard,
                dict(_table(section['data_class'], 'guardrails.data_class', file)),
            )
        )
    for name, cls in (('pii', PIIGuard), ('outbound', OutboundGuard), ('injection', InjectionGuard)):
        value = section.get(name)
        if value is None or value is False:
            continue
        kwargs = {} if value is True else dict(_table(value, f'guardrails.{name}', file))
        guards.append(_build(f'guardrails.{name}', file, cls, kwargs))
    rules = section.get('approvals', [])
    if not isinstance(rules, list):
        raise ConfigError(
            'must be an array of tables ([[guardrails.approvals]])', file=file, key='guardrails.approvals'
        )
    costs = section.get('tool_costs', {})
    for tool, cost in _table(costs, 'guardrails.tool_costs', file).items():
        if not isinstance(cost, (int, float)) or isinstance(cost, bool) or cost < 0:
            raise ConfigError('must be a cost in USD (a number >= 0)', file=file, key=f'guardrails.tool_costs.{tool}')
    built = []
    for i, r in enumerate(rules):
        key = f'guardrails.approvals[{i}]'
        r = _table(r, key, file)
        bad = set(r) - _RULE_KEYS
        if bad:
            raise ConfigError(
                f'unknown keys {sorted(bad)} (allowed: {", ".join(sorted(_RULE_KEYS))})', file=file, key=key
            )
        if 'args' in r:
            _table(r['args'], f'{key}.args', file)
        try:
            fields: dict[str, Any] = {k: (tuple(v) if k == 'data_classes' else v) for k, v in r.items()}
            built.append(ApprovalRule(**fields))
        except ConfigError as e:
            raise ConfigError(str(e).split(': ', 1)[-1], file=file, key=f'{key}.{e.key}' if e.key else key) from None
        except TypeError as e:
            raise ConfigError(f'bad value ({e})', file=file, key=key) from None
    if built:
        guards.append(ApprovalPolicy(built, tool_costs=dict(costs)))
    return guards


def operator_roles(name: str, path: str | os.PathLike[str] | None = None) -> frozenset[str] | None:
    """The roles of operator `name` in `[operators.<name>]` of the config, or None if not listed (or no
    ./proctor.toml). A config named explicitly (argument or `PROCTOR_CONFIG`) must exist."""
    p = config_path(path)
    if not p.exists() and path is None and not os.environ.get('PROCTOR_CONFIG'):
        return None  # no ./proctor.toml: roles come from elsewhere (PROCTOR_ROLES)
    ops = _read(p).get('operators', {})
    entry = _table(ops, 'operators', str(p)).get(name)
    if entry is None:
        return None
    roles = _table(entry, f'operators.{name}', str(p)).get('roles', [])
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        raise ConfigError('roles must be a list of role names', file=str(p), key=f'operators.{name}.roles')
    return frozenset(roles)
