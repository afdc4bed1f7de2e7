"""The root `proctor` Typer app: global options, error handling, and the sub-commands of each area.

Each area adds its commands in its own module (`_runs.py`, `_models.py`, `_approvals.py`, ...),
which imports heavy libraries inside the command bodies so `proctor --help` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, TextIO, cast

import typer

from ..exceptions import ProctorError

__all__ = ('app', 'main', 'state_from_ctx')

app = typer.Typer(
    name='proctor',
    help='Teams of specialised LLM agents under a supervisor: runs, approvals, memory, traces, usage.',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown, not rich markup: help texts name TOML tables like [operators.NAME], which rich markup would eat.
    rich_markup_mode='markdown',
)

#: Area modules that register sub-commands on `app` when imported.
_AREAS = ('_runs', '_models', '_usage', '_approvals', '_memory', '_traces', '_console', '_worker', '_eval')


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f'proctor {version("proctor")}')
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    state_dir: Annotated[
        Path | None, typer.Option('--state-dir', help='State directory (default: $PROCTOR_STATE_DIR or ./.proctor).')
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option('--database-url', help='Postgres URL for scale-out (default: $PROCTOR_DATABASE_URL).'),
    ] = None,
    log_json: Annotated[bool, typer.Option('--log-json', help='Log as JSON lines instead of pretty text.')] = False,
    version: Annotated[
        bool,
        typer.Option(
            '--version', help='Print the version of proctor and exit.', is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    # Factories that rebuild a team (resume, replay, workers) read these from the environment.
    if state_dir is not None:
        os.environ['PROCTOR_STATE_DIR'] = str(state_dir)
    if database_url is not None:
        os.environ['PROCTOR_DATABASE_URL'] = database_url
    _configure_logging(log_json)
    ctx.obj = {'state_dir': state_dir, 'database_url': database_url, 'log_json': log_json}


def _configure_logging(log_json: bool) -> None:
    import logging

    import structlog

    renderer = (
        structlog.processors.JSONRenderer() if log_json or not sys.stderr.isatty() else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt='iso'),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=_StderrLoggerFactory(),
        # Not cached: the logger must follow sys.stderr when it is swapped (CliRunner, pytest capture).
        cache_logger_on_first_use=False,
    )


class _StderrLoggerFactory:
    """A structlog logger factory that writes to whatever `sys.stderr` is at log time, not at configure time."""

    def __call__(self, *args: object) -> object:
        import structlog

        return structlog.PrintLogger(file=cast(TextIO, _LazyStderr()))


class _LazyStderr:
    def write(self, s: str) -> int:
        return sys.stderr.write(s)

    def flush(self) -> None:
        sys.stderr.flush()


def state_from_ctx(ctx: typer.Context | None = None, *, create: bool = False):
    """The state store the global options (or the environment) name.

    Commands that only read (`create=False`) refuse a state dir that does not exist, naming it: a
    mistyped `--state-dir` must not look like "no runs" (nor leave an empty state dir behind).
    """
    from ..exceptions import StateDirError
    from ..state._store import StateStore, resolve_database_url, resolve_state_dir

    obj = (ctx.obj if ctx is not None else None) or {}
    state_dir, database_url = obj.get('state_dir'), obj.get('database_url')
    if not create and resolve_database_url(database_url) is None:
        path = resolve_state_dir(state_dir)
        if path.exists() and not path.is_dir():
            raise StateDirError(f'state dir {path} is not a directory', path=str(path))
        if not path.is_dir():
            raise StateDirError(
                f'no state dir at {path}: nothing has run there (pass --state-dir DIR or set PROCTOR_STATE_DIR)',
                path=str(path),
            )
    return StateStore(state_dir, database_url=database_url)


def _load_areas() -> None:
    for name in _AREAS:
        try:
            importlib.import_module(f'{__package__}.{name}')
        except ModuleNotFoundError as e:
            if e.name != f'{__package__}.{name}':
                raise


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning proctor errors into one readable line and exit code 1."""
    _load_areas()
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code != 0:  # `typer.Exit(n)` comes back as a return value here
            raise SystemExit(code)
    except ProctorError as e:
        typer.echo(f'error: {e}', err=True)
        raise SystemExit(1) from None
    except (typer.Abort, KeyboardInterrupt):
        typer.echo('aborted', err=True)
        raise SystemExit(130) from None
    except typer.Exit as e:
        raise SystemExit(e.exit_code) from None
    except SystemExit:
        raise
    except Exception as e:  # click usage errors and anything unexpected: one line, no traceback
        show, code = getattr(e, 'show', None), getattr(e, 'exit_code', None)
        if callable(show) and isinstance(code, int):
            show()  # a click/typer usage error: its own message and exit code 2
            raise SystemExit(code) from None
        typer.echo(f'error: {type(e).__name__}: {e}', err=True)
        raise SystemExit(1) from None
