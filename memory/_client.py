"""Opening Chroma: an embedded `PersistentClient` on a folder, or an `HttpClient` to a server; and
turning Chroma's and httpx's failures into `MemoryStoreError`s that name the path or URL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..exceptions import MemoryStoreError, UserError
from ._offline import offline_env

__all__ = ('Location', 'parse_url', 'open_client', 'store_errors', 'CHROMA_URL_ENV')

T = TypeVar('T')
CHROMA_URL_ENV = 'PROCTOR_CHROMA_URL'


@dataclass(frozen=True)
class Location:
    """Where a memory lives: `path` (embedded) or `url` (server)."""

    path: Path | None = None
    url: str | None = None
    database: str | None = None  # server mode: a Chroma database (created on first use); None = Chroma's default

    @property
    def mode(self) -> str:
        return 'server' if self.url else 'embedded'

    def __str__(self) -> str:
        if self.url:
            return f'{self.url} (database {self.database})' if self.database else self.url
        return str(self.path)


def parse_url(url: str) -> tuple[str, int, bool]:
    """`http://host:port` -> (host, port, ssl); a clear `UserError` for anything else."""
    parts = urlsplit(url if '://' in url else f'http://{url}')
    if parts.scheme not in ('http', 'https') or not parts.hostname or parts.path not in ('', '/'):
        raise UserError(f'chroma url {url!r} must look like http://127.0.0.1:8000')
    try:
        port = parts.port or (443 if parts.scheme == 'https' else 8000)
    except ValueError:
        raise UserError(f'chroma url {url!r} has an invalid port') from None
    return parts.hostname, port, parts.scheme == 'https'


def _settings(**kwargs: Any) -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, **kwargs)


def open_client(location: Location) -> Any:
    """A Chroma client for `location` (raises `MemoryStoreError` naming it when it cannot be opened)."""
    offline_env()
    import chromadb

    from . import _embedding  # noqa: F401  (registers MiniLMEmbedding so stored configs resolve)

    if location.url:
        host, port, ssl = parse_url(location.url)
        with store_errors(location):
            client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=_settings())
            if location.database:
                _use_database(client, location.database, host=host, port=port, ssl=ssl)
            return client
    assert location.path is not None
    try:
        location.path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MemoryStoreError(f'cannot create memory store folder {location.path}: {e.strerror}') from e
    if not os.access(location.path, os.R_OK | os.W_OK | os.X_OK):
        raise MemoryStoreError(f'memory store folder {location.path} is not readable and writable')
    with store_errors(location):
        return chromadb.PersistentClient(path=str(location.path), settings=_settings(allow_reset=False))


def _use_database(client: Any, database: str, *, host: str, port: int, ssl: bool) -> None:
    from chromadb import AdminClient
    from chromadb.errors import NotFoundError

    # The client's own admin handle is released by `client.close()`; a fresh AdminClient would leak its sockets.
    admin = getattr(client, '_admin_client', None) or AdminClient(
        _settings(
            chroma_api_impl='chromadb.api.fastapi.FastAPI',
            chroma_server_host=host,
            chroma_server_http_port=port,
            chroma_server_ssl_enabled=ssl,
        )
    )
    try:
        admin.get_database(database)
    except NotFoundError:
        admin.create_database(database)
    client.set_database(database)


def _is_unreachable(e: BaseException) -> bool:
    import httpx

    if isinstance(e, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    return isinstance(e, ValueError) and 'could not connect' in str(e).lower()


@contextmanager
def store_errors(location: Location) -> Iterator[None]:
    """Re-raise connection and Chroma failures as `MemoryStoreError` naming `location`."""
    from chromadb.errors import ChromaError

    try:
        yield
    except UserError:
        raise
    except Exception as e:
        if location.url and _is_unreachable(e):
            raise MemoryStoreError(f'chroma server at {location.url} is unreachable: {e}') from e
        if isinstance(e, (ChromaError, OSError)) or type(e).__module__.startswith(('chromadb', 'httpx')):
            raise MemoryStoreError(f'memory store {location}: {type(e).__name__}: {e}') from e
        raise


def guarded(location: Location, fn: Callable[[], T]) -> T:
    with store_errors(location):
        return fn()
