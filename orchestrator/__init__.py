"""Teams, supervisors, delegation, the run lifecycle, the durable engine binding and model routing."""

from ._context import RunDeps
from ._models import build_model, model_id_of
from ._observers import ModelCall, ObserverCapability, RunEvent, RunObserver, ToolCall
from ._records import DelegationRecord, RunRecord, RunRecords
from ._routing import PreferredModelRouter, Route, Router
from ._team import DATA_CLASSES, DelegationResult, Team, TeamResult

__all__ = (
    'DATA_CLASSES',
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
    'build_model',
    'model_id_of',
)
