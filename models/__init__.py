"""The multi-LLM layer: the model registry (cost, latency, capabilities, approved data classes),
`proctor.toml` config, routing and fallback, spend limits (budgets), the usage ledger and audit of
which model served, and the embedded local model.

It imports `proctor.state` and `proctor.core`, nothing above."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._budget import Budget, BudgetGuard, budget_status
    from ._config import ProctorConfig, RoutingPolicy, load_config
    from ._ledger import Ledger, LedgerEntry, LedgerObserver, UsageRow
    from ._local_model import LocalModelSettings
    from ._models import build_model, model_id_of
    from ._plan import RoutePlan
    from ._registry import ModelInfo, ModelRegistry
    from ._router import ModelRouter, PlannedRoute
    from ._routing import PreferredModelRouter, Routable, Route, Router

__all__ = (
    'Budget',
    'LocalModelSettings',
    'budget_status',
    'BudgetGuard',
    'build_model',
    'Ledger',
    'LedgerEntry',
    'LedgerObserver',
    'load_config',
    'model_id_of',
    'ModelInfo',
    'ModelRegistry',
    'ModelRouter',
    'PlannedRoute',
    'PreferredModelRouter',
    'ProctorConfig',
    'Routable',
    'Route',
    'RoutePlan',
    'Router',
    'RoutingPolicy',
    'UsageRow',
)

#: Public name -> the submodule that defines it; imported on first access (PEP 562).
_LAZY = {
    'Budget': '._budget',
    'LocalModelSettings': '._local_model',
    'BudgetGuard': '._budget',
    'budget_status': '._budget',
    'ProctorConfig': '._config',
    'RoutingPolicy': '._config',
    'load_config': '._config',
    'build_model': '._models',
    'model_id_of': '._models',
    'Ledger': '._ledger',
    'LedgerEntry': '._ledger',
    'LedgerObserver': '._ledger',
    'UsageRow': '._ledger',
    'RoutePlan': '._plan',
    'ModelInfo': '._registry',
    'ModelRegistry': '._registry',
    'ModelRouter': '._router',
    'PlannedRoute': '._router',
    'PreferredModelRouter': '._routing',
    'Routable': '._routing',
    'Route': '._routing',
    'Router': '._routing',
}


from .._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
