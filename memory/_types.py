"""What shared memory stores and returns: entries with provenance, namespaces, data-class rules, chunking.

Pure Python (no chromadb, no torch), so tools, the CLI and the protocol can use it cheaply.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

from ..exceptions import ProctorError, UserError

__all__ = (
    'DATA_CLASS_ORDER',
    'MAX_TEXT_CHARS',
    'CHUNK_CHARS',
    'Provenance',
    'MemoryEntry',
    'AllowedClasses',
    'namespace_for',
    'check_namespace',
    'classes_up_to',
    'allowed_classes',
    'content_hash',
    'check_text',
    'chunk_text',
    'source_kind',
)

#: Data classes in increasing sensitivity (the same order as `proctor.DATA_CLASSES`).
DATA_CLASS_ORDER: tuple[str, ...] = ('public', 'internal', 'confidential', 'restricted')
#: Longer texts are refused: memory holds notes and findings, not documents.
MAX_TEXT_CHARS = 100_000
#: Texts longer than this are stored as several chunks (MiniLM reads at most 256 tokens, ~1000 characters).
CHUNK_CHARS = 1_000

#: `allowed_classes(model_id) -> classes that model may see`, e.g. the model registry's compliance list.
AllowedClasses = Callable[[str | None], Iterable[str]]

_NS_PART = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$')


def namespace_for(team: str, project: str) -> str:
    """The namespace of a team's project: `'team/project'`."""
    return check_namespace(f'{team}/{project}')


def check_namespace(namespace: str) -> str:
    """Validate `'team/project'` (letters, digits, `. _ -` and spaces in each part); returns it."""
    if not isinstance(namespace, str) or namespace.count('/') != 1:
        raise UserError(f'memory namespace {namespace!r} must look like "team/project"')
    team, project = namespace.split('/')
    for part in (team, project):
        if not _NS_PART.match(part):
            raise UserError(
                f'memory namespace {namespace!r}: {part!r} must start with a letter or digit and use only '
                'letters, digits, ".", "_", "-" and spaces (at most 100 characters)'
            )
    return namespace


def _check_class(data_class: str) -> str:
    if data_class not in DATA_CLASS_ORDER:
        raise UserError(f'unknown data class {data_class!r} (one of {", ".join(DATA_CLASS_ORDER)})')
    return data_class


def classes_up_to(ceiling: str) -> frozenset[str]:
    """Every data class at or below `ceiling` in `public < internal < confidential < restricted`."""
    _check_class(ceiling)
    return frozenset(DATA_CLASS_ORDER[: DATA_CLASS_ORDER.index(ceiling) + 1])


def allowed_classes(ceiling: str, model_id: str | None = None, hook: Any = None) -> frozenset[str]:
    """The classes an agent may recall: at most the run's data class and, when `hook` is given, only
    those its model is approved for. `hook` is a `ModelRegistry` (its `data_classes` per model id),
    a mapping `model_id -> classes`, an object with `allowed_classes(model_id)`, or such a callable.
    A model the hook does not know is approved for nothing (fail closed)."""
    allowed = classes_up_to(ceiling)
    if hook is None:
        return allowed
    return allowed & _approved(hook, model_id)


def _approved(hook: Any, model_id: str | None) -> frozenset[str]:
    fn = getattr(hook, 'allowed_classes', None)
    if fn is not None:
        return frozenset(fn(model_id))
    if callable(hook):
        return frozenset(cast(Iterable[str], hook(model_id)))
    if isinstance(hook, Mapping):
        return frozenset(cast(Iterable[str], hook.get(model_id, ())))
    if model_id is None or not hasattr(hook, 'get'):
        return frozenset()
    try:
        return frozenset(hook.get(model_id).data_classes)  # a ModelRegistry
    except ProctorError:  # UnknownModelError
        return frozenset()


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def source_kind(source: str) -> str:
    """`url`, `file`, `tool` or `user`, from a source string like `https://…`, `file:src/x.py`, `tool:remember`."""
    if not source:
        return 'user'
    head = source.split(':', 1)[0].lower()
    if head in ('http', 'https'):
        return 'url'
    if head in ('url', 'file', 'tool', 'user'):
        return head
    return 'file' if '/' in source or '.' in source else 'tool'


@dataclass(frozen=True)
class Provenance:
    """Who wrote an entry, in which run, with which model, from what source, at what data class.

    `model_version` is what the provider reported (a response's model name), when known. `created_at`
    is seconds since the epoch. `content_hash` (sha256 of the stored text) is filled in by the store.
    """

    data_class: str = 'internal'
    run_id: str = ''
    agent_path: str = ''
    model_id: str = ''
    model_version: str = ''
    source: str = ''
    created_at: float = field(default_factory=time.time)
    content_hash: str = ''

    def __post_init__(self) -> None:
        _check_class(self.data_class)

    def with_hash(self, text: str) -> Provenance:
        return replace(self, content_hash=content_hash(text))


@dataclass
class MemoryEntry:
    """One stored entry (or one chunk of a long text). `score` (cosine similarity) is set by recall;
    `merged` says a write was merged into this existing near-duplicate instead of stored again."""

    id: str
    namespace: str
    text: str
    provenance: Provenance
    tags: tuple[str, ...] = ()
    parent_id: str = ''
    chunk: int = 0
    chunks: int = 1
    merged_count: int = 0
    score: float | None = None
    merged: bool = False

    @property
    def data_class(self) -> str:
        return self.provenance.data_class

    def citation(self) -> str:
        """`[mem:<id>] run …, agent …, model …@version, created …, class, source …` (fields that are known)."""
        p = self.provenance
        parts = []
        if p.run_id:
            parts.append(f'run {p.run_id}')
        if p.agent_path:
            parts.append(f'agent {p.agent_path}')
        if p.model_id:
            parts.append(
                f'model {p.model_id}'
                + (f'@{p.model_version}' if p.model_version and p.model_version != p.model_id else '')
            )
        parts.append('created ' + dt.datetime.fromtimestamp(p.created_at, dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ'))
        parts.append(p.data_class)
        if p.source:
            parts.append(f'source {p.source}')
        return f'[mem:{self.id}] ' + ', '.join(parts)

    def to_json(self) -> dict[str, Any]:
        p = self.provenance
        return {
            'id': self.id,
            'namespace': self.namespace,
            'text': self.text,
            'tags': list(self.tags),
            'score': self.score,
            'merged': self.merged,
            'merged_count': self.merged_count,
            'parent_id': self.parent_id,
            'chunk': self.chunk,
            'chunks': self.chunks,
            'provenance': {
                'run_id': p.run_id,
                'agent_path': p.agent_path,
                'model_id': p.model_id,
                'model_version': p.model_version,
                'created_at': p.created_at,
                'data_class': p.data_class,
                'source': p.source,
                'source_kind': source_kind(p.source),
                'content_hash': p.content_hash,
            },
        }


def check_text(text: Any, *, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(text, str) or not text.strip():
        raise UserError('memory text is empty: nothing to remember')
    if len(text) > limit:
        raise UserError(f'memory text is {len(text)} characters, over the limit of {limit}; store a summary instead')
    return text.strip()


def chunk_text(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Split `text` into pieces of at most `size` characters, at paragraph, line, sentence or word
    boundaries where one falls in the second half of a piece."""
    text = text.strip()
    out: list[str] = []
    while len(text) > size:
        window = text[:size]
        cut = -1
        for sep in ('\n\n', '\n', '. ', ' '):
            i = window.rfind(sep)
            if i >= size // 2:
                cut = i + len(sep)
                break
        if cut < 0:
            cut = size
        piece = text[:cut].strip()
        if piece:
            out.append(piece)
        text = text[cut:].strip()
    if text:
        out.append(text)
    return out
