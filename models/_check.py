"""`proctor models check`: one tiny request to each registry model, to test a registry before a run.

Each model gets "Reply with OK." capped at a few output tokens, once (no SDK retries), concurrently, through pydantic-ai's
`direct.model_request` (the same model object a run would use, compat settings included). The result
says whether the model answered, its status (ok, or the provider's HTTP status), the latency, and either
the model that answered or the one-line reason it did not.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import anyio

from ..exceptions import ProctorError
from ._errors import reason_of
from ._registry import ModelRegistry

__all__ = ('CheckResult', 'check_models')

PROMPT = 'Reply with OK.'


@dataclass
class CheckResult:
    model_id: str
    model: str  # the provider string (and base URL)
    reachable: bool
    status: str  # "ok", the provider's HTTP status, or "-" when no answer came back
    latency_ms: float | None
    detail: str  # the answering model, or why it did not answer

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def _check_one(registry: ModelRegistry, model_id: str, timeout_s: float) -> CheckResult:
    from pydantic_ai.direct import model_request
    from pydantic_ai.exceptions import ModelHTTPError
    from pydantic_ai.messages import ModelRequest

    info = registry.get(model_id)
    where = info.provider_string + (f' at {info.base_url}' if info.base_url else '')
    try:
        model = registry.model(model_id)  # (importing a provider SDK is not the model's latency)
    except ProctorError as e:  # cannot be built here (a missing API key, an SDK not installed)
        return CheckResult(model_id, where, False, '-', None, str(e).rpartition('cannot be built: ')[2])
    started = time.perf_counter()
    try:
        with anyio.fail_after(timeout_s + 1):
            response = await model_request(
                model,
                [ModelRequest.user_text_prompt(PROMPT)],
                model_settings={'max_tokens': 8, 'temperature': 0.0, 'timeout': timeout_s, 'max_retries': 0},
            )
    except Exception as e:
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        status = str(e.status_code) if isinstance(e, ModelHTTPError) else '-'
        return CheckResult(model_id, where, False, status, elapsed, reason_of(e))
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    answered = response.model_name or getattr(model, 'model_name', '') or model_id
    return CheckResult(model_id, where, True, 'ok', elapsed, f'answered as {answered}')


async def check_models(registry: ModelRegistry, model_ids: list[str], *, timeout_s: float = 30.0) -> list[CheckResult]:
    """Check `model_ids` concurrently; results in the order given."""
    results: dict[str, CheckResult] = {}

    async def one(mid: str) -> None:
        results[mid] = await _check_one(registry, mid, timeout_s)

    async with anyio.create_task_group() as tg:
        for mid in model_ids:
            tg.start_soon(one, mid)
    return [results[m] for m in model_ids]
