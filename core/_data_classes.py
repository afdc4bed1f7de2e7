"""The data classes a run, a memory entry and a model approval speak of, in increasing sensitivity."""

from __future__ import annotations

from typing import Literal

__all__ = ('DATA_CLASSES', 'DataClass')

DataClass = Literal['public', 'internal', 'confidential', 'restricted']

#: Data classes in increasing sensitivity.
DATA_CLASSES: tuple[DataClass, ...] = ('public', 'internal', 'confidential', 'restricted')
