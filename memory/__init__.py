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

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._briefing import BRIEFING_HEADER, MemoryBriefing
    from ._chroma import DEFAULT_DEDUPE_THRESHOLD, ChromaMemory
    from ._client import CHROMA_URL_ENV
    from ._embedding import MiniLMEmbedding
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


#: Public name -> the submodule that defines it; imported on first access (PEP 562) so that
#: `import proctor.memory` stays cheap and each name pulls in only what it needs.
_LAZY = {
    'BRIEFING_HEADER': '._briefing',
    'MemoryBriefing': '._briefing',
    'DEFAULT_DEDUPE_THRESHOLD': '._chroma',
    'ChromaMemory': '._chroma',
    'CHROMA_URL_ENV': '._client',
    'SharedMemory': '._protocol',
    'format_recollections': '._tools',
    'memory_tools': '._tools',
    'recall_for': '._tools',
    'CHUNK_CHARS': '._types',
    'DATA_CLASS_ORDER': '._types',
    'MAX_TEXT_CHARS': '._types',
    'MemoryEntry': '._types',
    'Provenance': '._types',
    'allowed_classes': '._types',
    'classes_up_to': '._types',
    'namespace_for': '._types',
    # The embedding function subclasses chromadb's: it loads chromadb when asked for.
    'MiniLMEmbedding': '._embedding',
}


from .._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
