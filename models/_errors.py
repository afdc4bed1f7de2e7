"""Provider failures as proctor errors: what ended a run, said in one paragraph.

A model request that fails carries, as attributes on the exception (the `_pydantic_ai_` prefix survives
DBOS pickling), the model it was sent to (`RegistryModel` stamps its registry id and provider) and the
specialist whose request it was (the team's observer capability stamps it). `provider_error` turns
whatever reached the top of a run (a pydantic-ai `FallbackExceptionGroup`, a `ModelHTTPError`, a
connection error, possibly inside anyio exception groups) into a `ProviderError` naming the
specialist, each model tried and its one-line reason; the original stays its `__cause__`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelHTTPError,
    ModelRequestTimeout,
    ModelTimeoutError,
)

from ..exceptions import ProctorError, ProviderError

__all__ = (
    'MODEL_ATTR',
    'SPECIALIST_ATTR',
    'reason_of',
    'mark_model',
    'mark_specialist',
    'provider_error',
    'failure_text',
)

MODEL_ATTR = '_pydantic_ai_proctor_model'  # the model a failed request went to: "id (provider string)"
SPECIALIST_ATTR = '_pydantic_ai_proctor_specialist'
_MAX_REASON = 240


def mark_model(exc: BaseException, label: str) -> None:
    if getattr(exc, MODEL_ATTR, None) is None:
        try:
            setattr(exc, MODEL_ATTR, label)
        except (AttributeError, TypeError):  # pragma: no cover - exceptions with __slots__
            pass


def mark_specialist(exc: BaseException, specialist: str) -> None:
    """Name the specialist whose model request raised `exc` (the innermost one wins)."""
    if getattr(exc, SPECIALIST_ATTR, None) is None:
        try:
            setattr(exc, SPECIALIST_ATTR, specialist)
        except (AttributeError, TypeError):  # pragma: no cover
            pass


def mark_failure(exc: BaseException, specialist: str, model: str | None) -> None:
    """Called where a specialist's model request failed: names the specialist and, unless a registry model
    already did, the model (a `FallbackExceptionGroup` is named by its members)."""
    mark_specialist(exc, specialist)
    if model and not isinstance(exc, BaseExceptionGroup):
        mark_model(exc, model)


def _trim(text: str) -> str:
    text = re.sub(r'\s+', ' ', text).strip()
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1].rstrip() + '…'


def _provider_message(body: Any) -> str | None:
    """The human part of a provider's error body: `{"error": {"message": ...}}`, `{"message": ...}`, text."""
    if isinstance(body, dict):
        inner = body.get('error', body)
        if isinstance(inner, dict):
            msg = inner.get('message') or inner.get('detail') or inner.get('msg')
            if msg:
                return _useful(str(msg))
        elif isinstance(inner, str) and inner:
            return _useful(inner)
        detail = body.get('detail')
        if detail:
            return _useful(str(detail))
        return None
    if isinstance(body, str) and body.strip():
        return _useful(body)
    return None


def _useful(msg: str) -> str:
    """A validation dump ("7 validation errors: {... 'msg': 'Input should be a valid string' ...}") read as its
    distinct messages, with where they point: the rest is noise in one line."""
    found = re.findall(r"'loc': \(([^)]*)\), 'msg': [\"']([^\"']+)[\"']", msg)
    if found:
        seen: dict[str, None] = {}
        for loc, text in found:
            parts = [p.strip(" '") for p in loc.split(',') if p.strip(" '")]
            where = '.'.join(p for p in parts if not p[:1].isupper())  # drop the union member names
            seen.setdefault(f'{where}: {text}' if where else text)
        # A union's other members ("messages.1.role: Input should be 'system'") say nothing about the fault.
        told = [m for m in seen if not re.search(r"\.role: Input should be '", m)] or list(seen)
        return 'request rejected: ' + '; '.join(told)
    return msg.split('\n  File "', 1)[0]  # a server's traceback tail


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 10:
        out.append(cur)
        if isinstance(cur, BaseExceptionGroup):  # e.g. anyio's "All connection attempts failed" per address
            out.extend(e for sub in cur.exceptions for e in _chain(sub))
        cur = cur.__cause__ or cur.__context__
    return out


def reason_of(exc: BaseException) -> str:
    """One line: the HTTP status and the provider's trimmed message, or what kind of failure it was."""
    if isinstance(exc, ModelHTTPError):
        msg = _provider_message(exc.body) or getattr(exc, 'message', '')
        auth = isinstance(exc, ModelAuthenticationError) or exc.status_code in (401, 403)
        return _trim(f'HTTP {exc.status_code}{" (check the API key)" if auth else ""}' + (f': {msg}' if msg else ''))
    chain = _chain(exc)
    if any(isinstance(e, (ModelTimeoutError, ModelRequestTimeout, TimeoutError)) for e in chain):
        return 'timed out'
    if any(isinstance(e, (ModelConnectionError, ConnectionError, OSError)) for e in chain):
        if any(isinstance(e, ConnectionRefusedError) or getattr(e, 'errno', None) == 111 for e in chain):
            return 'connection refused'
        last = next((e for e in reversed(chain) if not isinstance(e, BaseExceptionGroup)), chain[-1])
        return _trim(f'cannot connect: {last}' if str(last) else f'cannot connect: {type(last).__name__}')
    if isinstance(exc, ModelAPIError):
        return _trim(getattr(exc, 'message', '') or str(exc) or type(exc).__name__)
    return _trim(f'{type(exc).__name__}: {exc}')


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for sub in exc.exceptions:
            out.extend(_leaves(sub))
        return out
    return [exc]


def _is_model_failure(exc: BaseException) -> bool:
    """A provider's answer or the transport to it failed (not a bug raised from inside a model's code)."""
    if isinstance(exc, ModelAPIError):
        return True
    return isinstance(exc, (OSError, TimeoutError)) and getattr(exc, MODEL_ATTR, None) is not None


def _find_specialist(exc: BaseException) -> str | None:
    got = getattr(exc, SPECIALIST_ATTR, None)
    if got:
        return got
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            got = _find_specialist(sub)
            if got:
                return got
    return None


def provider_error(exc: BaseException, *, run_id: str | None = None) -> ProviderError | None:
    """The `ProviderError` for a run that `exc` ended, or None when `exc` is not a provider failure
    (proctor's own errors, cancellations and programming errors pass through unchanged)."""
    if isinstance(exc, (ProctorError, KeyboardInterrupt, SystemExit)) or not isinstance(exc, Exception):
        return None
    leaves = [e for e in _leaves(exc) if _is_model_failure(e)]
    if not leaves:
        return None
    specialist = _find_specialist(exc) or next((s for e in leaves if (s := getattr(e, SPECIALIST_ATTR, None))), None)
    attempts = []
    for e in leaves:
        model = getattr(e, MODEL_ATTR, None) or getattr(e, 'model_name', None) or '?'
        entry: dict[str, Any] = {'model': model, 'reason': reason_of(e), 'error': type(e).__name__}
        status = getattr(e, 'status_code', None)
        if isinstance(status, int):
            entry['status'] = status
        attempts.append(entry)
    return ProviderError(specialist=specialist or '?', attempts=attempts, run_id=run_id)


def failure_text(exc: BaseException, cause: BaseException | None = None) -> str:
    """What a run's record keeps of the exception that ended it, on one line: the error, then the
    provider's exception and each exception it groups."""
    head = f'{type(exc).__name__}: {exc}'
    if cause is None or cause is exc:
        return head
    under = [f'{type(cause).__name__}: {_trim(str(cause))}']
    under += [f'{type(leaf).__name__}: {_trim(str(leaf))}' for leaf in _leaves(cause) if leaf is not cause]
    return f'{head} [caused by {"; ".join(under)}]'
