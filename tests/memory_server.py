"""A real Chroma server for tests and benchmarks; the implementation is shared with the scale-out
example in `proctor.memory._server`."""

from __future__ import annotations

from proctor.memory._server import ChromaServer, free_port

__all__ = ('ChromaServer', 'free_port')
