"""Teams, supervisors, delegation, the run lifecycle, the durable engine binding and model routing."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core._data_classes import DATA_CLASSES
    from ..core._deps import RunDeps
    from ..core._events import ModelCall, RunEvent, RunObserver, ToolCall
    from ..models._budget import Budget, BudgetGuard, budget_status
    from ..models._config import ProctorConfig, RoutingPolicy, load_config
    from ..models._ledger import Ledger, LedgerEntry, LedgerObserver, UsageRow
    from ..models._models import build_model, model_id_of
    from ..models._plan import RoutePlan
    from ..models._registry import ModelInfo, ModelRegistry
    from ..models._router import ModelRouter, PlannedRoute
    from ..models._routing import PreferredModelRouter, Route, Router
    from ..state._records import DelegationRecord, RunRecord, RunRecords
    from ._observers import ObserverCapability
    from ._replay import ReplayReport, replay, replay_sync
    from ._team import DelegationResult, Team, TeamResult
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
    'ReplayReport',
    'replay',
    'replay_sync',
    'build_model',
    'model_id_of',
)

#: Public name -> the submodule that defines it; imported on first access (PEP 562) so that
#: `import proctor.orchestrator` stays cheap and each name pulls in only what it needs.
_LAZY = {
    'Budget': '..models._budget',
    'BudgetGuard': '..models._budget',
    'budget_status': '..models._budget',
    'ProctorConfig': '..models._config',
    'RoutingPolicy': '..models._config',
    'load_config': '..models._config',
    'RunDeps': '..core._deps',
    'build_model': '..models._models',
    'model_id_of': '..models._models',
    'ModelCall': '..core._events',
    'RunEvent': '..core._events',
    'RunObserver': '..core._events',
    'ToolCall': '..core._events',
    'ObserverCapability': '._observers',
    'DelegationRecord': '..state._records',
    'RunRecord': '..state._records',
    'RunRecords': '..state._records',
    'Ledger': '..models._ledger',
    'LedgerEntry': '..models._ledger',
    'LedgerObserver': '..models._ledger',
    'UsageRow': '..models._ledger',
    'RoutePlan': '..models._plan',
    'ModelInfo': '..models._registry',
    'ModelRegistry': '..models._registry',
    'ModelRouter': '..models._router',
    'PlannedRoute': '..models._router',
    'PreferredModelRouter': '..models._routing',
    'Route': '..models._routing',
    'Router': '..models._routing',
    'DATA_CLASSES': '..core._data_classes',
    'DelegationResult': '._team',
    'Team': '._team',
    'TeamResult': '._team',
    'Worker': '._worker',
    'ReplayReport': '._replay',
    'replay': '._replay',
    'replay_sync': '._replay',
}


from .._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
