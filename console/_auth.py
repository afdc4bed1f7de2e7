"""Who may use the console: operators with hashed tokens and roles, signed session cookies, CSRF tokens.

Operators come from `proctor.toml` (`[operators.alice] token_sha256 = "..."`, `roles = ["operator"]`)
or are passed to `create_app`. Only the SHA-256 of a token is ever stored. A session is a cookie
signed with HMAC-SHA256; it carries the operator's name, a per-session CSRF token and an expiry,
and it stops working when the operator's token changes or the operator is removed from the config.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError

__all__ = ('Operator', 'hash_token', 'load_operators', 'operators_from', 'SessionSigner', 'Session', 'load_secret')

_SHA256 = re.compile(r'^[0-9a-f]{64}$')
_NAME = re.compile(r'^[A-Za-z0-9_.@-]{1,100}$')
SESSION_TTL_S = 12 * 3600


def hash_token(token: str) -> str:
    """The hex SHA-256 of a sign-in token: what the config stores instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Operator:
    """A person who may sign in to the console; `roles` decide which approvals they may decide."""

    name: str
    token_sha256: str
    roles: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def with_token(cls, name: str, token: str, roles: Iterable[str] = ('operator',)) -> Operator:
        """An operator whose sign-in token is `token` (hashed here; the token itself is not kept)."""
        return cls(name, hash_token(token), frozenset(roles))

    def has_role(self, role: str) -> bool:
        return role in self.roles


def _operator_from_table(name: str, table: Any, *, file: str) -> Operator:
    key = f'operators.{name}'
    if not _NAME.match(name):
        raise ConfigError('operator names are letters, digits, and _.@-', file=file, key=key)
    if not isinstance(table, Mapping):
        raise ConfigError('must be a table with token_sha256 and roles', file=file, key=key)
    unknown = set(table) - {'token_sha256', 'roles'}
    if unknown:
        raise ConfigError(f'unknown keys {sorted(unknown)} (allowed: token_sha256, roles)', file=file, key=key)
    digest = table.get('token_sha256')
    if not isinstance(digest, str) or not _SHA256.match(digest.lower()):
        raise ConfigError(
            'token_sha256 must be 64 hex characters (the SHA-256 of the token; `proctor operator-token` makes one)',
            file=file,
            key=f'{key}.token_sha256',
        )
    roles = table.get('roles', [])
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        raise ConfigError('roles must be a list of role names', file=file, key=f'{key}.roles')
    return Operator(name, digest.lower(), frozenset(roles))


def load_operators(path: str | os.PathLike[str]) -> dict[str, Operator]:
    """The `[operators.*]` tables of a TOML file (an empty dict when the file has none).

    Raises `ConfigError` naming the file and key for a missing file, bad TOML or a bad entry.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise ConfigError('file not found', file=str(p)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f'invalid TOML: {e}', file=str(p)) from None
    section = data.get('operators', {})
    if not isinstance(section, Mapping):
        raise ConfigError('must be a table of operators ([operators.NAME])', file=str(p), key='operators')
    ops = {name: _operator_from_table(name, t, file=str(p)) for name, t in section.items()}
    _check_unique(ops.values(), file=str(p))
    return ops


def _check_unique(ops: Iterable[Operator], *, file: str | None = None) -> None:
    seen: dict[str, str] = {}
    for op in ops:
        if op.token_sha256 in seen:
            raise ConfigError(
                f'operators {seen[op.token_sha256]!r} and {op.name!r} share a token', file=file, key='operators'
            )
        seen[op.token_sha256] = op.name


def operators_from(value: Any) -> dict[str, Operator]:
    """Normalise what `create_app(operators=...)` accepts: a TOML path, a mapping or a list of `Operator`s."""
    if isinstance(value, (str, os.PathLike)):
        return load_operators(value)
    if isinstance(value, Mapping):
        ops = {}
        for name, op in value.items():
            if isinstance(op, Operator):
                ops[name] = op if op.name == name else Operator(name, op.token_sha256, op.roles)
            else:
                ops[name] = _operator_from_table(name, op, file='operators')
    else:
        ops = {}
        for op in value:
            if not isinstance(op, Operator):
                raise ConfigError(f'expected Operator, got {type(op).__name__}', key='operators')
            ops[op.name] = op
    _check_unique(ops.values())
    return ops


def load_secret(state_dir: Path) -> bytes:
    """The key that signs session cookies: `console.key` in the state dir, created (mode 0600) if missing."""
    path = state_dir / 'console.key'
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as f:
        f.write(key)
    return key


@dataclass(frozen=True)
class Session:
    operator: Operator
    csrf: str
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


class SessionSigner:
    """Makes and checks session cookie values (`payload.signature`, both base64url)."""

    def __init__(self, secret: bytes, operators: Mapping[str, Operator], *, ttl_s: float = SESSION_TTL_S) -> None:
        self.secret = secret
        self.operators = operators
        self.ttl_s = ttl_s

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self.secret, payload, hashlib.sha256).digest())

    def authenticate(self, token: str) -> Operator | None:
        """The operator whose token this is, or None (compares digests in constant time)."""
        digest = hash_token(token)
        found = None
        for op in self.operators.values():
            if hmac.compare_digest(op.token_sha256, digest):
                found = op
        return found

    def issue(self, op: Operator) -> tuple[str, Session]:
        session = Session(op, secrets.token_urlsafe(32), time.time() + self.ttl_s)
        payload = json.dumps(
            {'op': op.name, 'th': op.token_sha256[:16], 'csrf': session.csrf, 'exp': session.expires},
            separators=(',', ':'),
        ).encode()
        return f'{_b64(payload)}.{self._sign(payload)}', session

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie value stands for, or None if it is absent, forged, expired or revoked."""
        if not cookie or '.' not in cookie:
            return None
        body, sig = cookie.rsplit('.', 1)
        try:
            payload = _unb64(body)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(self._sign(payload), sig):
            return None
        try:
            data = json.loads(payload)
            op = self.operators.get(data['op'])
            if op is None or not hmac.compare_digest(op.token_sha256[:16], data['th']) or data['exp'] < time.time():
                return None
            return Session(op, str(data['csrf']), float(data['exp']))
        except (ValueError, KeyError, TypeError):
            return None
