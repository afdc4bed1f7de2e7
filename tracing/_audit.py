"""`AuditObserver`: one hash-chained audit record per model call (`model_call`, or `model_error` when
it fails), queued by the hooks and appended with the run's other records (`proctor.state` owns the
chain: `append_audit`, `verify_audit`)."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from pydantic_ai.messages import ModelResponse

from ..core._events import ModelCall, RunObserver
from ..state._audit import append_in
from ..state._writer import BufferedWriter
from ._recording import input_hash, response_hash

__all__ = ('AuditObserver',)


class AuditObserver(BufferedWriter, RunObserver):
    """Appends a `model_call` record for every model call (`model_error` when one fails).

    Hooks queue the record; the store's writer appends the queue (`BufferedWriter`) in the
    transaction that writes the run's other records, each second, at the end of every run and
    delegation and before any read or direct append in this process. A record queued when the
    process dies is appended again when the run is recovered (its hooks run again; the call's key
    keeps it to one record). The served model, its version and the call's cost come from the ledger
    (`call.extra['proctor.cost']`, the routed model's response metadata) when a registry router is
    in use, else from the call and pydantic-ai's price data (None when unknown).
    """

    needs_chain_lock = True

    def write_batch(self, conn: sa.Connection, items: list[Any]) -> None:
        append_in(conn, items)

    @staticmethod
    def _served(call: ModelCall, response: ModelResponse) -> dict[str, Any]:
        meta = (response.metadata or {}).get('proctor') or {}
        cc = call.extra.get('proctor.cost')  # the ledger's CallCost, when a registry router routes the team
        cost = getattr(cc, 'cost_usd', None)
        if cost is None:
            try:
                cost = float(response.cost().total_price)
            except Exception:
                cost = None
        return {
            'model_id': meta.get('model_id') or getattr(cc, 'model_id', None) or call.model_id,
            'model_version': meta.get('version') or getattr(cc, 'version', None),
            'cost_usd': cost,
        }

    def _base(self, call: ModelCall) -> dict[str, Any]:
        d = call.deps
        elapsed = time.perf_counter() - call.started
        return {
            'run_id': d.run_id,
            'team': d.team,
            'project': d.project,
            'data_class': d.data_class,
            'agent_path': d.agent_path,
            'specialist': d.specialist,
            'delegation_id': d.delegation_id,
            'call_key': call.key,
            'requested_model_id': call.model_id,
            'requested_model': call.model_name,
            'provider': call.system or None,
            'input_hash': input_hash(call),
            'started_at': round(time.time() - elapsed, 6),
            'duration_ms': round(elapsed * 1000, 3),
        }

    async def after_model_call(self, call: ModelCall, response: ModelResponse) -> None:
        record = (
            self._base(call)
            | {
                'returned_model': response.model_name,
                'provider': response.provider_name or call.system or None,
                'provider_response_id': response.provider_response_id,
                'finish_reason': response.finish_reason,
                'output_hash': response_hash(call, response),
                'input_tokens': response.usage.input_tokens,
                'output_tokens': response.usage.output_tokens,
            }
            | self._served(call, response)
        )
        self._buf.append(('model_call', record, call.deps.run_id, f'model:{call.key}'))

    async def on_model_error(self, call: ModelCall, error: BaseException) -> None:
        record = self._base(call) | {'error': f'{type(error).__name__}: {error}'[:2000]}
        self._buf.append(('model_error', record, call.deps.run_id, f'model_error:{call.key}'))
