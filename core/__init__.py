"""The types every layer shares: a run's dependencies (`RunDeps`), the run events and the observer
protocol (`RunObserver`, `ModelCall`, `ToolCall`, `RunEvent`), and the data classes.

Nothing here imports another proctor folder."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._data_classes import DATA_CLASSES, DataClass
    from ._deps import RunDeps
    from ._events import (
        EventKind,
        ModelCall,
        OutputCall,
        RunEvent,
        RunObserver,
        ToolCall,
        ToolCallDenied,
        current_tool_call,
        emit,
    )

__all__ = (
    'current_tool_call',
    'DATA_CLASSES',
    'DataClass',
    'emit',
    'EventKind',
    'ModelCall',
    'OutputCall',
    'RunDeps',
    'RunEvent',
    'RunObserver',
    'ToolCall',
    'ToolCallDenied',
)

#: Public name -> the submodule that defines it; imported on first access (PEP 562).
_LAZY = {
    'DATA_CLASSES': '._data_classes',
    'DataClass': '._data_classes',
    'RunDeps': '._deps',
    'EventKind': '._events',
    'ModelCall': '._events',
    'OutputCall': '._events',
    'RunEvent': '._events',
    'RunObserver': '._events',
    'ToolCall': '._events',
    'ToolCallDenied': '._events',
    'current_tool_call': '._events',
    'emit': '._events',
}


from .._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
