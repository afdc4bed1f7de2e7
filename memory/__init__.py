"""Shared vector memory for a team: Chroma embedded (default) or a Chroma server, offline MiniLM
embeddings, namespaces per team and project, provenance on every entry, data-class-aware recall.

```python
from proctor.memory import ChromaMemory

memory = ChromaMemory()                       # <state dir>/memory; ChromaMemory(url=...) for a server
researcher = research('local:smollm2', toolsets=[memory.tools()])   # remember / recall tools
team = Team(..., observers=[memory.briefing()])                     # memories handed to subtasks
```

Importing this package does not import chromadb or torch; they load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._briefing import BRIEFING_HEADER, MemoryBriefing
from ._chroma import DEFAULT_DEDUPE_THRESHOLD, ChromaMemory
from ._client import CHROMA_URL_ENV
from ._protocol import SharedMemory
from ._tools import format_recollections, memory_tools, recall_for
from ._types import (
    CHUNK_CHARS,
    DATA_CLASS_ORDER,
    MAX_TEXT_CHARS,
    MemoryEntry,
    Provenance,
    allowed_classes,
    classes_up_to,
    namespace_for,
)

if TYPE_CHECKING:
    from ._embedding import MiniLMEmbedding

__all__ = (
    'BRIEFING_HEADER',
    'CHROMA_URL_ENV',
    'CHUNK_CHARS',
    'DATA_CLASS_ORDER',
    'DEFAULT_DEDUPE_THRESHOLD',
    'MAX_TEXT_CHARS',
    'ChromaMemory',
    'MemoryBriefing',
    'MemoryEntry',
    'MiniLMEmbedding',
    'Provenance',
    'SharedMemory',
    'allowed_classes',
    'classes_up_to',
    'format_recollections',
    'memory_tools',
    'namespace_for',
    'recall_for',
)


def __getattr__(name: str) -> Any:
    # The embedding function subclasses chromadb's; import it only when asked for.
    if name == 'MiniLMEmbedding':
        from ._embedding import MiniLMEmbedding

        return MiniLMEmbedding
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
