"""`ChromaMemory`: shared memory on Chroma, embedded (`PersistentClient` in the state dir) or on a
Chroma server (`HttpClient`), with the same behaviour in both.

One collection per namespace (`'team/project'`), cosine space, vectors from the offline MiniLM
model. Every Chroma call runs in a worker thread (`anyio.to_thread.run_sync`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import structlog

from ..exceptions import GuardrailTripped, UserError
from ..guardrails._pipeline import GuardrailPipeline
from ..guardrails._protocol import GuardContext
from ..state._store import resolve_state_dir
from . import _codec
from ._client import CHROMA_URL_ENV, Location, guarded, open_client
from ._dedupe import Row, write_rows
from ._types import (
    CHUNK_CHARS,
    DATA_CLASS_ORDER,
    MAX_TEXT_CHARS,
    MemoryEntry,
    Provenance,
    check_namespace,
    check_text,
    chunk_text,
)

__all__ = ('ChromaMemory', 'DEFAULT_DEDUPE_THRESHOLD')

T = TypeVar('T')
log = structlog.get_logger('proctor.memory')
DEFAULT_DEDUPE_THRESHOLD = 0.95
MAX_K = 100


#: Locks striped over (store, namespace): a fixed set however many namespaces a process touches (two
#: namespaces may share one, which only serialises their writes).
_NS_LOCKS = tuple(threading.Lock() for _ in range(64))


class ChromaMemory:
    """Shared vector memory on Chroma.

    `ChromaMemory()` is embedded, in `<state_dir>/memory` (state dir: the argument, else
    `PROCTOR_STATE_DIR`, else `.proctor`); `ChromaMemory(url='http://127.0.0.1:8000')` talks to a
    `chroma run` server (`database=` picks a Chroma database on it, created on first use).
    `ChromaMemory.from_env()` picks the server when `PROCTOR_CHROMA_URL` is set.
    `guardrails` run at the `memory_write` hook on every write (a redaction changes what is
    stored; a block raises `GuardrailTripped`). Writes whose cosine similarity to an entry of the same
    class is at least `dedupe_threshold` are merged into it (`None` disables merging). Texts longer than
    `chunk_chars` are stored as chunks; longer than `max_chars` is a `UserError`. `allowed_classes`
    (a `ModelRegistry`, a mapping or callable `model_id -> classes`) narrows what agents recall through
    the tools; without it the tools use the registry of the team's `ModelRouter`, if any.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        url: str | None = None,
        database: str | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        dedupe_threshold: float | None = DEFAULT_DEDUPE_THRESHOLD,
        guardrails: Sequence[Any] | GuardrailPipeline = (),
        allowed_classes: Any = None,
        chunk_chars: int = CHUNK_CHARS,
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        if url and path is not None:
            raise UserError('ChromaMemory takes a path (embedded) or a url (server), not both')
        if database and not url:
            raise UserError('ChromaMemory(database=...) needs a server url')
        if not 100 <= chunk_chars <= max_chars:
            raise UserError(f'chunk_chars {chunk_chars} must be at least 100 and at most max_chars ({max_chars})')
        if dedupe_threshold is not None and not 0.0 < dedupe_threshold <= 1.0:
            raise UserError(f'dedupe_threshold {dedupe_threshold} must be in (0, 1] or None')
        if url:
            from ._client import parse_url

            parse_url(url)  # a malformed URL fails here, not at first use
            self.location = Location(url=url.rstrip('/'), database=database)
        else:
            base = Path(path) if path is not None else resolve_state_dir(state_dir) / 'memory'
            self.location = Location(path=base.expanduser().absolute())
        self.dedupe_threshold = dedupe_threshold
        self.guardrails = guardrails if isinstance(guardrails, GuardrailPipeline) else GuardrailPipeline(guardrails)
        self.allowed_classes = allowed_classes
        self.chunk_chars = chunk_chars
        self.max_chars = max_chars
        self._client: Any = None
        self._ef: Any = None
        self._collections: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(
        cls, *, url: str | None = None, state_dir: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> ChromaMemory:
        """Server mode when `url` or `PROCTOR_CHROMA_URL` is set, else embedded in the state dir."""
        url = url or os.environ.get(CHROMA_URL_ENV) or None
        return cls(url=url, state_dir=state_dir, **kwargs)

    @property
    def mode(self) -> str:
        return self.location.mode

    def __repr__(self) -> str:
        return f'ChromaMemory({self.mode}: {self.location})'

    # ------------------------------------------------------------------ plumbing (worker threads)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(guarded, self.location, lambda: self._retry_stale(fn))

    def _retry_stale(self, fn: Callable[[], T]) -> T:
        from chromadb.errors import NotFoundError

        try:
            return fn()
        except NotFoundError:
            # A cached collection handle outlived its collection (another process deleted it, or the
            # server was reset): forget the handles and try once more.
            self._collections.clear()
            return fn()

    def _exists(self) -> bool:
        """False for an embedded store never written to: reads then answer empty without creating it."""
        if self._client is not None or self.location.path is None:
            return True
        return (self.location.path / 'chroma.sqlite3').is_file()

    def _chroma(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from ._embedding import MiniLMEmbedding

                    self._ef = MiniLMEmbedding()
                    self._client = open_client(self.location)
        return self._client

    def _collection(self, namespace: str, *, create: bool) -> Any:
        col = self._collections.get(namespace)
        if col is not None:
            return col
        if not create and not self._exists():
            return None
        from chromadb.errors import NotFoundError

        client = self._chroma()
        name = _codec.collection_name(namespace)
        if create:
            col = client.get_or_create_collection(
                name,
                embedding_function=self._ef,
                configuration={'hnsw': {'space': 'cosine'}},
                metadata={_codec.NS_KEY: namespace},
            )
        else:
            try:
                col = client.get_collection(name, embedding_function=self._ef)
            except NotFoundError:
                return None
        self._collections[namespace] = col
        return col

    def _namespaces_sync(self) -> list[str]:
        if not self._exists():
            return []
        out = []
        for col in self._chroma().list_collections():
            ns = (col.metadata or {}).get(_codec.NS_KEY)
            if isinstance(ns, str):
                out.append(ns)
        return sorted(out)

    def _targets(self, namespace: str | None) -> list[Any]:
        names = [check_namespace(namespace)] if namespace is not None else self._namespaces_sync()
        return [c for c in (self._collection(ns, create=False) for ns in names) if c is not None]

    def _ns_lock(self, namespace: str) -> threading.Lock:
        """The lock of (store, namespace), shared by every ChromaMemory of this process: check-then-add is atomic."""
        return _NS_LOCKS[hash((str(self.location), namespace)) % len(_NS_LOCKS)]

    def close(self) -> None:
        """Release the client (embedded: the folder's files). The memory can be used again afterwards."""
        with self._lock:
            client, self._client = self._client, None
            self._collections.clear()
        if client is not None and hasattr(client, 'close'):
            client.close()

    # ------------------------------------------------------------------ agent integration

    def tools(self, *, max_k: int = 10) -> Any:
        """`remember` / `recall` tools over this memory, for `Specialist(toolsets=[memory.tools()])`."""
        from ._tools import memory_tools

        return memory_tools(self, allowed_classes=self.allowed_classes, max_k=max_k)

    def briefing(self, *, k: int = 3, min_score: float = 0.3, remember_results: bool = False) -> Any:
        """A run observer handing relevant memories to each delegated subtask: `Team(observers=[...])`."""
        from ._briefing import MemoryBriefing

        return MemoryBriefing(
            self, k=k, min_score=min_score, allowed_classes=self.allowed_classes, remember_results=remember_results
        )

    # ------------------------------------------------------------------ writing

    async def add(
        self, text: str, *, namespace: str, provenance: Provenance | None = None, tags: Sequence[str] = ()
    ) -> list[MemoryEntry]:
        """Store `text` (chunked when long); see `SharedMemory.add`."""
        return await self.add_many([text], namespace=namespace, provenance=provenance, tags=tags)

    async def add_many(
        self, texts: Sequence[str], *, namespace: str, provenance: Provenance | None = None, tags: Sequence[str] = ()
    ) -> list[MemoryEntry]:
        check_namespace(namespace)
        prov = provenance or Provenance()
        if isinstance(texts, str):
            raise UserError('add_many takes a list of texts; use add() for one text')
        prepared = [self._guarded_text(check_text(t, limit=self.max_chars), namespace, prov) for t in texts]
        return await self._run(lambda: self._write(namespace, prepared, prov, tuple(tags)))

    def _guarded_text(self, text: str, namespace: str, prov: Provenance) -> str:
        if not self.guardrails.has('memory_write'):
            return text
        ctx = GuardContext(
            hook='memory_write',
            run_id=prov.run_id,
            agent_path=prov.agent_path or 'memory',
            specialist=(prov.agent_path or 'memory').split('>')[-1],
            data_class=prov.data_class,
            extra={'namespace': namespace},
        )
        outcome = self.guardrails.apply('memory_write', text, ctx)
        if outcome.approval is not None:
            raise GuardrailTripped(
                guard='memory_write',
                hook='memory_write',
                reason=f'needs approval ({outcome.approval.reason}); memory writes cannot wait',
                run_id=prov.run_id or None,
            )
        return check_text(outcome.payload, limit=self.max_chars)

    def _write(self, namespace: str, texts: list[str], prov: Provenance, tags: tuple[str, ...]) -> list[MemoryEntry]:
        from ._embedding import embed

        rows: list[Row] = []
        unique = self.dedupe_threshold is None
        for text in texts:
            pieces = chunk_text(text, self.chunk_chars) if len(text) > self.chunk_chars else [text]
            parent = _codec.entry_id(namespace, prov.data_class, text, unique=unique)
            for i, piece in enumerate(pieces):
                eid = parent if len(pieces) == 1 else f'{parent}.{i}'
                meta = _codec.to_metadata(
                    prov.with_hash(piece), namespace=namespace, tags=tags, parent_id=parent, chunk=i, chunks=len(pieces)
                )
                rows.append((eid, piece, meta))
        vectors = embed([r[1] for r in rows])
        with self._ns_lock(namespace):
            col = self._collection(namespace, create=True)
            return write_rows(col, namespace, rows, vectors, prov, tags, self.dedupe_threshold)

    # ------------------------------------------------------------------ reading

    async def recall(
        self,
        query: str,
        *,
        namespace: str | None,
        k: int = 5,
        data_classes: Collection[str] | None = None,
        min_score: float | None = None,
    ) -> list[MemoryEntry]:
        """The `k` entries most similar to `query`, best first; see `SharedMemory.recall`."""
        if not isinstance(query, str) or not query.strip():
            raise UserError('memory query is empty: say what to recall')
        if not isinstance(k, int) or k < 1:
            raise UserError(f'k must be a positive number of entries, not {k!r}')
        classes = None if data_classes is None else frozenset(data_classes)
        if classes is not None and not classes:
            return []
        if namespace is not None:
            check_namespace(namespace)
        return await self._run(lambda: self._recall(query.strip(), namespace, min(k, MAX_K), classes, min_score))

    def _recall(
        self, query: str, namespace: str | None, k: int, classes: frozenset[str] | None, min_score: float | None
    ) -> list[MemoryEntry]:
        from ._embedding import embed

        cols = self._targets(namespace)
        if not cols:
            return []
        vector = embed([query])[0]
        where = _codec.class_filter(classes, DATA_CLASS_ORDER)
        hits: list[MemoryEntry] = []
        for col in cols:
            hits.extend(self._nearest(col, vector, k, classes if where else None, where))
        hits.sort(key=lambda e: -(e.score or 0.0))
        if min_score is not None:
            hits = [h for h in hits if (h.score or 0.0) >= min_score]
        return hits[:k]

    @staticmethod
    def _nearest(
        col: Any, vector: Any, k: int, classes: frozenset[str] | None, where: dict[str, Any] | None
    ) -> list[MemoryEntry]:
        """The `k` nearest entries of allowed classes. A metadata-filtered vector query costs ~100 ms at
        10k entries (an unfiltered one ~3 ms), so fetch extra neighbours unfiltered and drop the other
        classes here; only if too few remain (and the collection has more) ask Chroma to filter."""
        include = ['documents', 'metadatas', 'distances']
        n = k if classes is None else 4 * k + 16
        res = col.query(query_embeddings=[vector], n_results=n, include=include)
        rows = list(zip(res['ids'][0], res['documents'][0], res['metadatas'][0], res['distances'][0]))
        if classes is not None:
            kept = [r for r in rows if (r[2] or {}).get('data_class') in classes]
            if len(kept) < k and len(rows) == n:
                res = col.query(query_embeddings=[vector], n_results=k, where=where, include=include)
                kept = list(zip(res['ids'][0], res['documents'][0], res['metadatas'][0], res['distances'][0]))
            rows = kept
        return [_codec.from_row(eid, doc, meta, distance=dist) for eid, doc, meta, dist in rows[:k]]

    async def get(self, entry_id: str, *, namespace: str | None = None) -> MemoryEntry | None:
        """The entry with this id, or `None`."""

        def go() -> MemoryEntry | None:
            for col in self._targets(namespace):
                res = col.get(ids=[entry_id], include=['documents', 'metadatas'])
                if res['ids']:
                    return _codec.from_row(res['ids'][0], res['documents'][0], res['metadatas'][0])
            return None

        return await self._run(go)

    async def list(
        self, *, namespace: str | None = None, run_id: str | None = None, limit: int | None = 50
    ) -> list[MemoryEntry]:
        """Entries (optionally of one run), newest first, at most `limit` (`None`: all)."""

        def go() -> list[MemoryEntry]:
            where = {'run_id': run_id} if run_id else None
            out: list[MemoryEntry] = []
            for col in self._targets(namespace):
                res = col.get(where=where, include=['documents', 'metadatas'])
                out.extend(_codec.from_row(i, d, m) for i, d, m in zip(res['ids'], res['documents'], res['metadatas']))
            out.sort(key=lambda e: (-e.provenance.created_at, e.id))
            return out if limit is None else out[:limit]

        return await self._run(go)

    async def forget(
        self,
        ids: Sequence[str] = (),
        *,
        namespace: str | None = None,
        run_id: str | None = None,
        older_than: float | None = None,
    ) -> int:
        """Delete by id (an entry's chunks go with it), by run, or older than `older_than` seconds
        (criteria given together must all match); returns how many rows were deleted."""
        if isinstance(ids, str):
            ids = [ids]
        if not ids and not run_id and older_than is None:
            raise UserError('forget needs entry ids, a run id or an age (older_than)')
        if older_than is not None and older_than < 0:
            raise UserError(f'older_than must be a positive number of seconds, not {older_than}')
        cutoff = None if older_than is None else time.time() - older_than

        def go() -> int:
            clauses: list[dict[str, Any] | None] = [
                {'run_id': run_id} if run_id else None,
                {'created_at': {'$lt': cutoff}} if cutoff is not None else None,
            ]
            where = _codec.and_filter(*clauses)
            deleted = 0
            for col in self._targets(namespace):
                doomed: set[str] = set()
                if ids:
                    by_id = col.get(ids=list(ids), where=where, include=[])['ids']
                    chunks = col.get(where=_codec.and_filter({'parent_id': {'$in': list(ids)}}, where), include=[])[
                        'ids'
                    ]
                    doomed.update(by_id, chunks)
                else:
                    doomed.update(col.get(where=where, include=[])['ids'])
                if doomed:
                    col.delete(ids=sorted(doomed))
                    deleted += len(doomed)
            log.info('memory.forget', deleted=deleted, run_id=run_id, older_than=older_than, ids=len(ids))
            return deleted

        return await self._run(go)

    async def namespaces(self) -> list[str]:
        """Namespaces that hold (or held) entries."""
        return await self._run(self._namespaces_sync)

    async def stats(self) -> dict[str, Any]:
        """Entries per namespace and data class, oldest and newest, merges; where the store is."""
        from ._embedding import EMBEDDING_NAME

        def go() -> dict[str, Any]:
            per_ns: dict[str, Any] = {}
            for ns in self._namespaces_sync():
                col = self._collection(ns, create=False)
                if col is None:
                    continue
                metas = col.get(include=['metadatas'])['metadatas']
                by_class: dict[str, int] = {}
                for m in metas:
                    by_class[str(m.get('data_class'))] = by_class.get(str(m.get('data_class')), 0) + 1
                times = [float(m.get('created_at') or 0.0) for m in metas]
                per_ns[ns] = {
                    'entries': len(metas),
                    'by_class': by_class,
                    'merged': sum(int(m.get('merged_count') or 0) for m in metas),
                    'runs': len({m.get('run_id') for m in metas if m.get('run_id')}),
                    'oldest': min(times, default=None),
                    'newest': max(times, default=None),
                }
            return {
                'mode': self.mode,
                'location': str(self.location),
                'embedding': EMBEDDING_NAME,
                'entries': sum(v['entries'] for v in per_ns.values()),
                'namespaces': per_ns,
            }

        return await self._run(go)
