"""Entries <-> Chroma rows: ids, flat metadata, collection names for namespaces."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from typing import Any

from ._types import MemoryEntry, Provenance, source_kind

__all__ = (
    'NS_KEY',
    'collection_name',
    'entry_id',
    'to_metadata',
    'from_row',
    'parse_tags',
    'format_tags',
    'class_filter',
    'and_filter',
)

#: Collection metadata key holding the namespace a collection stores.
NS_KEY = 'proctor_namespace'
_SLUG = re.compile(r'[^A-Za-z0-9]+')


def collection_name(namespace: str) -> str:
    """A valid Chroma collection name for `namespace` (readable slug + hash, so no two collide)."""
    slug = _SLUG.sub('-', namespace).strip('-')[:40] or 'ns'
    return f'pm-{slug}-{hashlib.sha256(namespace.encode()).hexdigest()[:10]}'


def entry_id(namespace: str, data_class: str, text: str, *, unique: bool = False) -> str:
    """Deterministic from (namespace, class, text), so a replayed write lands on the same entry."""
    h = hashlib.sha256(f'{namespace}\0{data_class}\0{text}'.encode()).hexdigest()[:20]
    return f'm{h}' + (f'-{uuid.uuid4().hex[:8]}' if unique else '')


def format_tags(tags: Sequence[str]) -> str:
    # ',a,b,' so a tag is findable with a substring test and never matches part of another tag.
    clean = sorted({t.strip().replace(',', ' ') for t in tags if isinstance(t, str) and t.strip()})
    return f',{",".join(clean)},' if clean else ''


def parse_tags(raw: Any) -> tuple[str, ...]:
    return tuple(t for t in str(raw or '').split(',') if t)


def to_metadata(
    entry_prov: Provenance, *, namespace: str, tags: Sequence[str], parent_id: str, chunk: int, chunks: int
) -> dict[str, Any]:
    p = entry_prov
    return {
        'namespace': namespace,
        'data_class': p.data_class,
        'run_id': p.run_id,
        'agent_path': p.agent_path,
        'model_id': p.model_id,
        'model_version': p.model_version,
        'source': p.source,
        'source_kind': source_kind(p.source),
        'created_at': float(p.created_at),
        'content_hash': p.content_hash,
        'tags': format_tags(tags),
        'parent_id': parent_id,
        'chunk': chunk,
        'chunks': chunks,
        'merged_count': 0,
        'last_merged_at': 0.0,
        'last_merged_by': '',
    }


def from_row(
    entry_id_: str, document: str | None, meta: dict[str, Any] | None, *, distance: float | None = None
) -> MemoryEntry:
    m = meta or {}
    prov = Provenance(
        data_class=str(m.get('data_class') or 'restricted'),  # unknown class: treat as the most sensitive
        run_id=str(m.get('run_id', '')),
        agent_path=str(m.get('agent_path', '')),
        model_id=str(m.get('model_id', '')),
        model_version=str(m.get('model_version', '')),
        source=str(m.get('source', '')),
        created_at=float(m.get('created_at') or 0.0),
        content_hash=str(m.get('content_hash', '')),
    )
    return MemoryEntry(
        id=entry_id_,
        namespace=str(m.get('namespace', '')),
        text=document or '',
        provenance=prov,
        tags=parse_tags(m.get('tags')),
        parent_id=str(m.get('parent_id', '')),
        chunk=int(m.get('chunk') or 0),
        chunks=int(m.get('chunks') or 1),
        merged_count=int(m.get('merged_count') or 0),
        score=None if distance is None else round(1.0 - float(distance), 6),
    )


def class_filter(classes: frozenset[str] | None, all_classes: Sequence[str]) -> dict[str, Any] | None:
    if classes is None or set(all_classes) <= classes:
        return None
    return {'data_class': {'$in': sorted(classes)}}


def and_filter(*clauses: dict[str, Any] | None) -> dict[str, Any] | None:
    present = [c for c in clauses if c]
    if not present:
        return None
    return present[0] if len(present) == 1 else {'$and': present}
