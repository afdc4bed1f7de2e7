"""Teams, supervisors, delegation, the run lifecycle, the durable engine binding and model routing."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._budget import Budget, BudgetGuard, budget_status
    from ._config import ProctorConfig, RoutingPolicy, load_config
    from ._context import RunDeps
    from ._models import build_model, model_id_of
    from ._observers import ModelCall, ObserverCapability, RunEvent, RunObserver, ToolCall
    from ._records import DelegationRecord, RunRecord, RunRecords
    from ._ledger import Ledger, LedgerEntry, LedgerObserver, UsageRow
    from ._plan import RoutePlan
    from ._registry import ModelInfo, ModelRegistry
    from ._router import ModelRouter, PlannedRoute
    from ._routing import PreferredModelRouter, Route, Router
    from ._team import DATA_CLASSES, DelegationResult, Team, TeamResult
    from ._worker import Worker

__all__ = (
    'DATA_CLASSES',
    'Budget',
    'BudgetGuard',
    'Ledger',
    'LedgerEntry',
    'LedgerObserver',
    'ModelInfo',
    'ModelRegistry',
    'ModelRouter',
    'PlannedRoute',
    'ProctorConfig',
    'RoutePlan',
    'RoutingPolicy',
    'UsageRow',
    'budget_status',
    'load_config',
    'DelegationRecord',
    'DelegationResult',
    'ModelCall',
    'ObserverCapability',
    'RunEvent',
    'RunObserver',
    'ToolCall',
    'PreferredModelRouter',
    'Route',
    'Router',
    'RunDeps',
    'RunRecord',
    'RunRecords',
    'Team',
    'TeamResult',
    'Worker',
    'build_model',
    'model_id_of',
)

#: Public name -> the submodule that defines it; imported on first access (PEP 562) so that
#: `import proctor.orchestrator` stays cheap and each name pulls in only what it needs.
_LAZY = {
    'Budget': '._budget',
    'BudgetGuard': '._budget',
    'budget_status': '._budget',
    'ProctorConfig': '._config',
    'RoutingPolicy': '._config',
    'load_config': '._config',
    'RunDeps': '._context',
    'build_model': '._models',
    'model_id_of': '._models',
    'ModelCall': '._observers',
    'ObserverCapability': '._observers',
    'RunEvent': '._observers',
    'RunObserver': '._observers',
    'ToolCall': '._observers',
    'DelegationRecord': '._records',
    'RunRecord': '._records',
    'RunRecords': '._records',
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
    'Route': '._routing',
    'Router': '._routing',
    'DATA_CLASSES': '._team',
    'DelegationResult': '._team',
    'Team': '._team',
    'TeamResult': '._team',
    'Worker': '._worker',
}


from .._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
