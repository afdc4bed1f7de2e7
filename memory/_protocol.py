"""`SharedMemory`: the store a team's agents share, whatever backs it (embedded Chroma, a Chroma server)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol, runtime_checkable

from ._types import MemoryEntry, Provenance

__all__ = ('SharedMemory',)


@runtime_checkable
class SharedMemory(Protocol):
    """Namespaced vector memory (namespace = `'team/project'`), every entry with provenance.

    Callers may rely on: empty text raises `UserError`; a long text is stored as chunks; an exact or
    near-duplicate (cosine similarity at or above the store's threshold, same data class) is merged
    into the existing entry instead of stored twice; recall in an unknown namespace returns `[]`;
    recall only returns entries whose data class is in `data_classes`; a store that cannot be
    reached raises `MemoryStoreError` naming its path or URL. All methods are safe to await from
    the event loop (blocking work runs in worker threads).
    """

    async def add(
        self, text: str, *, namespace: str, provenance: Provenance | None = None, tags: Sequence[str] = ()
    ) -> list[MemoryEntry]:
        """Store `text` (one entry per chunk); returns the stored or merged-into entries."""
        ...

    async def add_many(
        self, texts: Sequence[str], *, namespace: str, provenance: Provenance | None = None, tags: Sequence[str] = ()
    ) -> list[MemoryEntry]:
        """Store several texts with one provenance, embedding them in batches."""
        ...

    async def recall(
        self,
        query: str,
        *,
        namespace: str | None,
        k: int = 5,
        data_classes: Collection[str] | None = None,
        min_score: float | None = None,
    ) -> list[MemoryEntry]:
        """The `k` entries most similar to `query`, best first (`namespace=None`: all namespaces)."""
        ...

    async def get(self, entry_id: str, *, namespace: str | None = None) -> MemoryEntry | None: ...

    async def list(
        self, *, namespace: str | None = None, run_id: str | None = None, limit: int | None = 50
    ) -> list[MemoryEntry]:
        """Entries, newest first."""
        ...

    async def forget(
        self,
        ids: Sequence[str] = (),
        *,
        namespace: str | None = None,
        run_id: str | None = None,
        older_than: float | None = None,
    ) -> int:
        """Delete entries by id (with their chunks), by the run that wrote them, or older than
        `older_than` seconds; returns how many entries were deleted."""
        ...

    async def namespaces(self) -> list[str]: ...

    async def stats(self) -> dict[str, Any]: ...
