"""Turning a model spec (an id, a pydantic-ai model string, or a `Model`) into a pydantic-ai `Model`.

Ids proctor knows itself: `local:smollm2` (the embedded model, built lazily so `import proctor`
never loads llama.cpp) and `test` (pydantic-ai's `TestModel`). Anything else with a provider prefix
goes to pydantic-ai's `infer_model`; a failure there is an `UnknownModelError` naming the model.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic_ai.models import Model

from ..exceptions import ModelUnavailableError, UnknownModelError, UserError

__all__ = ('ModelSpec', 'model_id_of', 'build_model', 'LOCAL_MODELS')

ModelSpec = Any  # str | Model

#: Embedded models proctor ships support for; the value is the loader's name for the GGUF.
LOCAL_MODELS = {'local:smollm2': 'smollm2'}

_local_cache: dict[str, Model] = {}
_local_lock = threading.Lock()


def model_id_of(spec: ModelSpec) -> str:
    """A stable id for a model spec: the string itself, or a `Model`'s `proctor_id`/`model_name`."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Model):
        return getattr(spec, 'proctor_id', None) or spec.model_name
    raise UserError(f'a model must be a model id string or a pydantic-ai Model, not {type(spec).__name__}')


def build_model(spec: ModelSpec) -> Model:
    """The pydantic-ai `Model` for `spec` (cached for the embedded models: they load weights)."""
    if isinstance(spec, Model):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise UnknownModelError(str(spec), hint='a model id is a non-empty string like "local:smollm2"')
    if spec in LOCAL_MODELS:
        with _local_lock:
            model = _local_cache.get(spec)
            if model is None:
                from ._local_model import LocalLlamaModel

                model = LocalLlamaModel(LOCAL_MODELS[spec])
                _local_cache[spec] = model
            return model
    if spec.startswith('local:'):
        raise UnknownModelError(spec, known=list(LOCAL_MODELS), hint='embedded models are the ones listed')
    if spec == 'test':
        from pydantic_ai.models.test import TestModel

        return TestModel()
    if ':' not in spec:
        raise UnknownModelError(
            spec, hint='use a registry id or a "provider:model" string such as "openai:gpt-4o-mini"'
        )
    from pydantic_ai.models import infer_model

    try:
        return infer_model(spec)
    except Exception as e:
        reason = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        if str(e).startswith('Unknown model'):
            raise UnknownModelError(spec, hint=reason) from e
        # A model pydantic-ai knows but cannot build here: a missing API key, a provider SDK not installed.
        raise ModelUnavailableError(spec, reason) from e
