"""`proctor memory search|list|add|forget|stats`: the team's shared vector memory.

Embedded by default (`<state dir>/memory`); `--chroma-url` or `PROCTOR_CHROMA_URL` uses a Chroma server.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from ..exceptions import UserError
from ._app import app

T = TypeVar('T')

memory_app = typer.Typer(help='Shared vector memory: search, list, add, forget, stats.', no_args_is_help=True)
app.add_typer(memory_app, name='memory')

_AGE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$')
_UNIT = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 7 * 86400}

NamespaceOpt = Annotated[
    str | None, typer.Option('--namespace', '-n', help="'team/project' (default: all namespaces).")
]
JsonOpt = Annotated[bool, typer.Option('--json', help='One JSON document.')]


@memory_app.callback()
def _memory(
    ctx: typer.Context,
    chroma_url: Annotated[
        str | None,
        typer.Option(
            '--chroma-url', envvar='PROCTOR_CHROMA_URL', help='Chroma server URL (default: embedded in the state dir).'
        ),
    ] = None,
) -> None:
    obj = ctx.ensure_object(dict)
    obj['chroma_url'] = chroma_url


def parse_age(text: str) -> float:
    """'30d' -> seconds (units s, m, h, d, w)."""
    m = _AGE.match(text or '')
    if not m:
        raise UserError(f'--older-than {text!r} must be a number with a unit s, m, h, d or w (e.g. 30d)')
    return float(m.group(1)) * _UNIT[m.group(2)]


def _run(ctx: typer.Context, fn: Callable[[Any], Awaitable[T]]) -> T:
    import anyio

    from ..memory import ChromaMemory

    obj = ctx.obj or {}
    memory = ChromaMemory.from_env(url=obj.get('chroma_url'), state_dir=obj.get('state_dir'))
    try:
        return anyio.run(fn, memory)
    finally:
        memory.close()


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime('%Y-%m-%d %H:%M')


def _short(text: str, n: int) -> str:
    text = ' '.join(text.split())
    return text if len(text) <= n else text[: n - 1] + '…'


def _print(entries: list[Any], *, scores: bool) -> None:
    """Two lines per entry: its citation (id + provenance), then the text."""
    for e in entries:
        head = f'{e.score:5.2f}  ' if scores and e.score is not None else ''
        typer.echo(f'{head}{e.namespace}  {e.citation()}')
        typer.echo(f'{" " * len(head)}  {_short(e.text, 300)}')


@memory_app.command('search')
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help='What to look for.')],
    namespace: NamespaceOpt = None,
    k: Annotated[int, typer.Option('-k', help='How many entries.')] = 5,
    data_class: Annotated[
        str | None, typer.Option('--data-class', help='Only entries at or below this class (default: all).')
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Entries most similar to QUERY, best first, with provenance."""
    from ..memory import classes_up_to

    classes = classes_up_to(data_class) if data_class else None
    entries = _run(ctx, lambda m: m.recall(query, namespace=namespace, k=k, data_classes=classes))
    if as_json:
        typer.echo(json.dumps([e.to_json() for e in entries]))
    elif not entries:
        typer.echo('no matching memories')
    else:
        _print(entries, scores=True)


@memory_app.command('list')
def list_entries(
    ctx: typer.Context,
    namespace: NamespaceOpt = None,
    run: Annotated[str | None, typer.Option('--run', help='Only entries written by this run.')] = None,
    limit: Annotated[int, typer.Option(help='How many entries, newest first.')] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Entries, newest first."""
    entries = _run(ctx, lambda m: m.list(namespace=namespace, run_id=run, limit=limit))
    if as_json:
        typer.echo(json.dumps([e.to_json() for e in entries]))
    elif not entries:
        typer.echo('no memories')
    else:
        _print(entries, scores=False)


@memory_app.command('add')
def add(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help='What to remember.')],
    namespace: Annotated[str, typer.Option('--namespace', '-n', help="'team/project'.")],
    data_class: Annotated[
        str, typer.Option('--data-class', help='public, internal, confidential or restricted.')
    ] = 'internal',
    tag: Annotated[list[str] | None, typer.Option('--tag', help='A label (repeatable).')] = None,
    source: Annotated[str, typer.Option(help='Where it came from (a URL, file:path, ...).')] = 'user:cli',
    as_json: JsonOpt = False,
) -> None:
    """Store TEXT in a namespace (near-duplicates are merged into the existing entry)."""
    from ..memory import Provenance

    prov = Provenance(data_class=data_class, source=source)
    entries = _run(ctx, lambda m: m.add(text, namespace=namespace, provenance=prov, tags=tag or ()))
    if as_json:
        typer.echo(json.dumps([e.to_json() for e in entries]))
        return
    for e in entries:
        typer.echo(f'{"merged into" if e.merged else "stored"} {e.id}')


@memory_app.command('forget')
def forget(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(help='Entry ids to delete (with their chunks).')] = None,
    run: Annotated[str | None, typer.Option('--run', help='Delete what this run wrote.')] = None,
    older_than: Annotated[
        str | None, typer.Option('--older-than', help='Delete entries older than this (30d, 12h).')
    ] = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete entries by id, by run, or by age (criteria given together must all match)."""
    age = parse_age(older_than) if older_than is not None else None
    if not ids and not run and age is None:
        raise UserError('memory forget needs entry ids, --run RUN or --older-than AGE')
    n = _run(ctx, lambda m: m.forget(ids or (), namespace=namespace, run_id=run, older_than=age))
    typer.echo(json.dumps({'deleted': n}) if as_json else f'deleted {n} entr{"y" if n == 1 else "ies"}')


@memory_app.command('stats')
def stats(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Entries per namespace and data class, where the store is."""
    s = _run(ctx, lambda m: m.stats())
    if as_json:
        typer.echo(json.dumps(s))
        return
    title = f'memory ({s["mode"]}: {s["location"]}) — {s["entries"]} entries'
    if not s['namespaces']:
        typer.echo(title)
        return
    from ._output import print_table

    print_table(
        ('namespace', 'entries', 'runs', 'merged', 'oldest', 'newest', 'by class'),
        [
            (
                ns,
                v['entries'],
                v['runs'],
                v['merged'],
                _when(v['oldest']) if v['oldest'] else '-',
                _when(v['newest']) if v['newest'] else '-',
                ', '.join(f'{c} {n}' for c, n in sorted(v['by_class'].items())) or '-',
            )
            for ns, v in s['namespaces'].items()
        ],
        right=('entries', 'runs', 'merged'),
        title=title,
    )
