"""The `proctor` command. Errors from proctor print as one line on stderr with a non-zero exit code."""

from ._app import app, main

__all__ = ('app', 'main')
