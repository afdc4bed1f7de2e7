"""Writing rows into a namespace's collection, merging near-duplicates instead of storing them twice.

A row whose vector has cosine similarity at or above the threshold with an existing entry of the
same data class (or with an earlier row of the same batch) is merged into it: the entry keeps its
text and original provenance, gains the new tags, and counts the sighting (`merged_count`).
Runs in a worker thread, under the namespace's write lock.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from . import _codec
from ._types import MemoryEntry, Provenance

__all__ = ('write_rows', 'merge_metadata', 'Row')

log = structlog.get_logger('proctor.memory')
BATCH = 1000  # under Chroma's max batch size in both modes
_NEIGHBOURS = 4
Row = tuple[str, str, dict[str, Any]]  # (id, text, metadata)
_Match = tuple[str, dict[str, Any], str]  # (id, metadata, document) of an existing entry


def _near_duplicates(col: Any, vectors: list[Any], data_class: str, threshold: float | None) -> list[_Match | None]:
    if threshold is None or not vectors:
        return [None] * len(vectors)
    # Unfiltered nearest neighbours, class checked here: a metadata-filtered vector query costs ~100 ms
    # at 10k entries, an unfiltered one ~3 ms. Only when every neighbour fetched is a near-duplicate of
    # another class could a same-class one be hiding further down; then ask with the filter.
    out: list[_Match | None] = []
    for start in range(0, len(vectors), BATCH):
        batch = vectors[start : start + BATCH]
        res = col.query(query_embeddings=batch, n_results=_NEIGHBOURS, include=['metadatas', 'distances', 'documents'])
        for i, (ids, dists, metas, docs) in enumerate(
            zip(res['ids'], res['distances'], res['metadatas'], res['documents'])
        ):
            match, undecided = None, len(ids) == _NEIGHBOURS
            for eid, dist, meta, doc in zip(ids, dists, metas, docs):
                if 1.0 - dist < threshold:
                    undecided = False
                    break
                if (meta or {}).get('data_class') == data_class:
                    match, undecided = (eid, dict(meta or {}), doc or ''), False
                    break
            if undecided:
                match = _filtered_match(col, batch[i], data_class, threshold)
            out.append(match)
    return out


def _filtered_match(col: Any, vector: Any, data_class: str, threshold: float) -> _Match | None:
    res = col.query(
        query_embeddings=[vector],
        n_results=1,
        where={'data_class': data_class},
        include=['metadatas', 'distances', 'documents'],
    )
    ids, dists = res['ids'][0], res['distances'][0]
    if ids and 1.0 - dists[0] >= threshold:
        return ids[0], dict(res['metadatas'][0][0] or {}), res['documents'][0][0] or ''
    return None


def merge_metadata(meta: dict[str, Any], prov: Provenance, tags: tuple[str, ...]) -> dict[str, Any]:
    """`meta` after one more sighting by `prov` (tags united, count and last sighting updated)."""
    by = f'{prov.run_id}|{prov.agent_path}'
    out = dict(meta)
    out['tags'] = _codec.format_tags((*_codec.parse_tags(meta.get('tags')), *tags))
    # The same run and agent writing the same thing again (a replayed tool call) is not a new sighting.
    replay = prov.run_id and by in (out.get('last_merged_by'), f'{out.get("run_id")}|{out.get("agent_path")}')
    if not replay:
        out['merged_count'] = int(out.get('merged_count') or 0) + 1
        out['last_merged_at'] = time.time()
        out['last_merged_by'] = by
    return out


def write_rows(
    col: Any,
    namespace: str,
    rows: list[Row],
    vectors: list[Any],
    prov: Provenance,
    tags: tuple[str, ...],
    threshold: float | None,
) -> list[MemoryEntry]:
    """Add `rows` to `col`, merging near-duplicates; one entry per row (the stored or merged-into one)."""
    import numpy as np

    matches = _near_duplicates(col, vectors, prov.data_class, threshold)
    new: list[int] = []
    merged: dict[str, tuple[dict[str, Any], str]] = {}  # existing id -> (merged metadata, document)
    landed: list[tuple[str, bool]] = []  # per row: the id it lives under, and whether it was merged
    for i, (eid, _, _) in enumerate(rows):
        match = matches[i]
        if match is not None:
            meta, doc = merged.get(match[0], (match[1], match[2]))
            merged[match[0]] = (merge_metadata(meta, prov, tags), doc)
            landed.append((match[0], True))
            continue
        twin = None
        if threshold is not None:  # a near-duplicate earlier in this same batch
            twin = next((j for j in new if float(np.dot(vectors[i], vectors[j])) >= threshold), None)
        if twin is not None:
            rows[twin][2].update(merge_metadata(rows[twin][2], prov, tags))
            landed.append((rows[twin][0], True))
        else:
            new.append(i)
            landed.append((eid, False))
    for start in range(0, len(new), BATCH):
        idx = new[start : start + BATCH]
        col.add(
            ids=[rows[i][0] for i in idx],
            embeddings=[vectors[i] for i in idx],
            documents=[rows[i][1] for i in idx],
            metadatas=[rows[i][2] for i in idx],
        )
    if merged:
        col.update(ids=list(merged), metadatas=[m for m, _ in merged.values()])
        log.debug('memory.merged', namespace=namespace, ids=list(merged))
    stored = {rows[i][0]: (rows[i][2], rows[i][1]) for i in new} | merged
    out = []
    for eid, was_merged in landed:
        meta, doc = stored[eid]
        entry = _codec.from_row(eid, doc, meta)
        entry.merged = was_merged
        out.append(entry)
    return out
