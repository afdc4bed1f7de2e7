"""How the CLI prints tables and trees: recorded data is shown as text, never read as rich markup.

Tasks, outputs, agent names and tool arguments come from users and models; a `[/]` or `[bold]` in them
must print as written (and must not crash the command), so tables are plain text and tree labels
escape everything that is data.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ('console', 'print_table', 'PIPE_WIDTH')

#: Width when stdout is not a terminal (a pipe, a file, a test): rows stay whole for grep and logs.
PIPE_WIDTH = 200


def _width() -> int | None:
    # A terminal (or an explicit $COLUMNS) decides its own width; elsewhere rich would assume 80 and wrap.
    if sys.stdout.isatty() or os.environ.get('COLUMNS'):
        return None
    return PIPE_WIDTH


def console() -> Console:
    """A console for output whose data parts the caller escaped (`rich.markup.escape`)."""
    from rich.console import Console

    return Console(width=_width(), highlight=False)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    flex: str | None = None,
    right: Collection[str] = (),
    title: str | None = None,
) -> None:
    """Print `rows` as plain aligned columns, one line per row, every cell literal.

    On a terminal the `flex` column (a task, some arguments) is cut with an ellipsis so that a row
    fits its width (down to 12 characters for that column); in a pipe rows are never cut, so `grep`
    and scripts see whole values.
    """
    import shutil

    import typer

    rows = [[' '.join(str(c).split()) for c in r] for r in rows]
    widths = [max([len(name), *(len(r[i]) for r in rows)]) for i, name in enumerate(columns)]
    if flex is not None and (sys.stdout.isatty() or os.environ.get('COLUMNS')):
        i = list(columns).index(flex)
        room = shutil.get_terminal_size().columns - sum(w + 2 for j, w in enumerate(widths) if j != i)
        widths[i] = min(widths[i], max(len(flex), 12, room))
        for r in rows:
            if len(r[i]) > widths[i]:
                r[i] = r[i][: widths[i] - 1] + '…'

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if name in right else c.ljust(w) for name, c, w in zip(columns, cells, widths)]
        return '  '.join(out).rstrip()

    if title:
        typer.echo(title)
    typer.echo(line(columns))
    for r in rows:
        typer.echo(line(r))
