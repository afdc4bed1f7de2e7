"""Suite-wide rules: no real model requests, no network, no telemetry; every test gets its own state dir."""

from __future__ import annotations

import os

# Offline everywhere, before any library reads its settings.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('ANONYMIZED_TELEMETRY', 'False')
os.environ.setdefault('DO_NOT_TRACK', '1')
os.environ.pop('OTEL_EXPORTER_OTLP_ENDPOINT', None)

import pytest
from pydantic_ai import models

# Real providers are refused; scripted models (FunctionModel) and the embedded model are not "requests".
models.ALLOW_MODEL_REQUESTS = False


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    d = tmp_path / 'state'
    monkeypatch.setenv('PROCTOR_STATE_DIR', str(d))
    return d


@pytest.fixture(autouse=True)
def _dbos_teardown():
    yield
    from proctor.state import _dbos as _engine

    _engine.shutdown()
