"""Teams, supervisors, delegation, the run lifecycle, the durable engine binding and model routing."""

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
