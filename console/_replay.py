"""The console's replay button: run the zero-live-call replay of a recorded run and say whether it matched."""

from __future__ import annotations

from typing import Any

import anyio

from ..exceptions import ProctorError
from ..state._records import RunRecord
from ..state._store import StateStore

__all__ = ('replay_run', 'REPLAY_TIMEOUT_S')

#: A replay is a handful of in-process steps; one that runs this long is stuck (e.g. waiting on something).
REPLAY_TIMEOUT_S = 60.0


async def replay_run(store: StateStore, rec: RunRecord, *, timeout_s: float = REPLAY_TIMEOUT_S) -> dict[str, Any]:
    """`{'matched': bool, 'summary': str, 'divergences': [...], ...}`. A replay that cannot run (no
    recorded team factory, a step with no recording) or takes over `timeout_s` comes back unmatched
    with the reason instead of raising."""
    from ..orchestrator._replay import replay

    try:
        with anyio.fail_after(timeout_s):
            report = await replay(rec.run_id, state_dir=store.state_dir, database_url=store.database_url)
    except TimeoutError:
        msg = f'the replay did not finish within {timeout_s:g} s and was stopped'
        return {'matched': False, 'summary': msg, 'divergences': [], 'error': msg}
    except ProctorError as e:
        return {'matched': False, 'summary': f'{type(e).__name__}: {e}', 'divergences': [], 'error': str(e)}
    return {
        'matched': report.ok,
        'summary': report.summary().splitlines()[0],
        'divergences': [str(d) for d in report.divergences],
        'status': report.status,
        'replayed_model_calls': report.replayed_model_calls,
        'live_model_calls': report.live_model_calls,
        'replayed_tool_calls': report.replayed_tool_calls,
        'error': report.error,
    }
