"""Every error proctor raises.

Two roots: `UserError` for misuse and bad configuration (caught before anything runs, nothing
recorded is touched), and `RunError` for a failure during a run (the run is recorded as failed
or paused, with the data an operator needs). The CLI prints `str(error)` as one line and exits
non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

from typing import Any

__all__ = (
    'ProctorError',
    'UserError',
    'ConfigError',
    'UnknownModelError',
    'ModelUnavailableError',
    'WorkspaceError',
    'StateDirError',
    'UnknownRunError',
    'UnknownApprovalError',
    'ApprovalDecisionError',
    'MemoryStoreError',
    'RunError',
    'NoRouteError',
    'ProviderError',
    'BudgetExceeded',
    'GuardrailTripped',
    'ApprovalRejected',
    'ReplayDivergence',
    'MissingRecording',
    'LocalModelUnavailable',
)


class ProctorError(Exception):
    """Base of every proctor error."""


class UserError(ProctorError):
    """Misuse or bad configuration: the message names the file, key, model, tool or path at fault."""


class ConfigError(UserError):
    """A configuration file (for example `proctor.toml`) is malformed or invalid."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ': '.join(x for x in (file, key) if x)
        super().__init__(f'{where}: {message}' if where else message)


class UnknownModelError(UserError):
    """A model id that is neither in the registry nor a model string proctor can build."""

    def __init__(self, model_id: str, *, known: list[str] | None = None, hint: str | None = None) -> None:
        self.model_id = model_id
        self.known = known or []
        msg = f'unknown model {model_id!r}'
        if self.known:
            msg += f' (known: {", ".join(sorted(self.known))})'
        if hint:
            msg += f'; {hint}'
        super().__init__(msg)


class ModelUnavailableError(UserError):
    """A model proctor knows how to build but not here: its API key is not set, or its provider's
    SDK is not installed."""

    def __init__(self, model_id: str, reason: str) -> None:
        self.model_id = model_id
        self.reason = reason
        super().__init__(f'model {model_id!r} is not available here: {reason}')


class WorkspaceError(UserError):
    """A workspace folder is missing, or a path escapes it."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class StateDirError(UserError):
    """The state directory cannot be created, read or written."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class UnknownRunError(UserError):
    """No run with this id is recorded in the state store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f'unknown run {run_id!r}')


class UnknownApprovalError(UserError):
    """No approval with this id is recorded."""

    def __init__(self, approval_id: str) -> None:
        self.approval_id = approval_id
        super().__init__(f'unknown approval {approval_id!r}')


class ApprovalDecisionError(UserError):
    """A decision that cannot be taken: already decided, expired, or the decider lacks the role."""

    def __init__(self, message: str, *, approval_id: str, reason: str) -> None:
        self.approval_id = approval_id
        self.reason = reason
        super().__init__(message)


class MemoryStoreError(UserError):
    """The memory store cannot be reached or used (names the path or URL)."""


class LocalModelUnavailable(UserError):
    """The embedded local model cannot be loaded (missing extra, missing GGUF)."""


class RunError(ProctorError):
    """A failure during a run. `run_id` names the run when known."""

    run_id: str | None = None

    def __init__(self, message: str, *, run_id: str | None = None, **data: Any) -> None:
        self.run_id = run_id
        self.data = data
        super().__init__(message)


class NoRouteError(RunError):
    """No approved model fits a specialist's needs and the run's data class."""

    def __init__(
        self, *, specialist: str, data_class: str, rejected: dict[str, str], run_id: str | None = None
    ) -> None:
        self.specialist = specialist
        self.data_class = data_class
        self.rejected = rejected
        why = '; '.join(f'{m}: {r}' for m, r in rejected.items()) or 'no candidates'
        super().__init__(
            f'no model for specialist {specialist!r} with data class {data_class!r} ({why})', run_id=run_id
        )


class ProviderError(RunError):
    """The model provider failed and that ended the run: every model tried for the specialist failed
    (or refused the request). `attempts` lists each model tried with its one-line reason (HTTP status and
    the provider's message, trimmed); the provider's own exception is `__cause__`."""

    def __init__(self, *, specialist: str, attempts: list[dict[str, Any]], run_id: str | None = None) -> None:
        self.specialist = specialist
        self.attempts = attempts
        tried = '; '.join(f'{a["model"]}: {a["reason"]}' for a in attempts) or 'no model answered'
        where = f'run {run_id}: ' if run_id else ''
        n = len(attempts)
        super().__init__(
            f'{where}specialist {specialist!r} got no model response ({n} model{"s" if n != 1 else ""} tried): {tried}',
            run_id=run_id,
        )

    def __reduce__(self) -> Any:  # keyword-only init: pickled (DBOS) by its fields
        return (_rebuild_provider_error, (self.specialist, self.attempts, self.run_id))


def _rebuild_provider_error(specialist: str, attempts: list[dict[str, Any]], run_id: str | None) -> ProviderError:
    return ProviderError(specialist=specialist, attempts=attempts, run_id=run_id)


class BudgetExceeded(RunError):
    """A budget would be (or was) exceeded; names the budget, its limit and what was spent."""

    def __init__(
        self,
        *,
        budget: str,
        limit: float,
        spent: float,
        unit: str = 'usd',
        run_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.unit = unit
        self.detail = detail  # e.g. what calls in flight hold and what this call needed
        super().__init__(
            f'budget {budget!r} exceeded: limit {limit:g} {unit}, spent {spent:g} {unit}'
            + (f' ({detail})' if detail else ''),
            run_id=run_id,
        )


class GuardrailTripped(RunError):
    """A guardrail blocked a payload."""

    def __init__(
        self, *, guard: str, hook: str, reason: str, run_id: str | None = None, tell_agent: bool = False
    ) -> None:
        self.guard = guard
        self.hook = hook
        self.reason = reason
        #: A blocked tool call the model is told about (the run goes on), not a stopped run.
        self.tell_agent = tell_agent
        super().__init__(f'guardrail {guard!r} blocked the {hook}: {reason}', run_id=run_id)


class ApprovalRejected(RunError):
    """An approval was rejected (or expired) and the policy says the run stops."""

    def __init__(self, *, approval_id: str, tool: str, reason: str, run_id: str | None = None) -> None:
        self.approval_id = approval_id
        self.tool = tool
        self.reason = reason
        super().__init__(f'approval {approval_id} for tool {tool!r} rejected: {reason}', run_id=run_id)


class MissingRecording(RunError):
    """Replay reached a step that has no recording: replay fails closed."""

    def __init__(self, step: str, *, run_id: str | None = None) -> None:
        self.step = step
        super().__init__(f'no recording for step {step!r}: replay fails closed', run_id=run_id)


class ReplayDivergence(RunError):
    """A replay took a different path than the recorded run."""

    def __init__(self, *, step: str, expected: str, got: str, run_id: str | None = None) -> None:
        self.step = step
        self.expected = expected
        self.got = got
        super().__init__(f'replay diverged at {step}: expected {expected}, got {got}', run_id=run_id)
