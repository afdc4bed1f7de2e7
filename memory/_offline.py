"""Environment that keeps Chroma, Hugging Face and transformers offline and quiet.

Set before those libraries are imported (they read it at import time); `setdefault`, so an
operator's explicit choice wins.
"""

from __future__ import annotations

import os

__all__ = ('offline_env', 'OFFLINE_ENV')

OFFLINE_ENV: dict[str, str] = {
    'ANONYMIZED_TELEMETRY': 'False',  # chromadb product telemetry
    'HF_HUB_OFFLINE': '1',
    'TRANSFORMERS_OFFLINE': '1',
    'HF_HUB_DISABLE_TELEMETRY': '1',
    'HF_HUB_DISABLE_PROGRESS_BARS': '1',
    'HF_HUB_DISABLE_UPDATE_CHECK': '1',
    'DO_NOT_TRACK': '1',
    'TRANSFORMERS_VERBOSITY': 'error',  # no "Loading weights" progress bars on stderr
    'TOKENIZERS_PARALLELISM': 'false',  # no fork warnings from the Rust tokenizer
}


def offline_env() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
