"""A tiny greeting library."""

from __future__ import annotations


def greet(name: str) -> str:
    """Say hello to `name`."""
    return f'Hello, {name}!'
