"""`proctor traces list|show|export`, `proctor replay` and `proctor audit verify|list|head`."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import app, state_from_ctx

if TYPE_CHECKING:
    from ..tracing._view import TraceNode

traces_app = typer.Typer(help='Traces of runs in the local trace store.', no_args_is_help=True)
app.add_typer(traces_app, name='traces')
audit_app = typer.Typer(help='The hash-chained audit log of model calls and approval decisions.', no_args_is_help=True)
app.add_typer(audit_app, name='audit')


def _short(value: Any, n: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = ' '.join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + '…'


def _ms(ms: float | None) -> str:
    from ..core._format import human_duration

    return 'open' if ms is None else human_duration(ms / 1000)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, default=str))


@traces_app.command('list')
def list_traces(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
    limit: Annotated[int, typer.Option(help='How many traces, newest first.')] = 50,
) -> None:
    """List stored traces, newest first (one per run)."""
    from ..tracing._store import TraceStore

    rows = TraceStore(state_from_ctx(ctx)).list_traces(limit=limit)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        typer.echo('no traces')
        return
    from ._output import print_table

    print_table(
        ('run', 'trace', 'team', 'status', 'started', 'duration', 'spans', 'errors', 'task'),
        [
            (
                (r['run_id'] or '-')[:12],
                r['trace_id'][:16],
                r['team'] or '-',
                r['run_status'] or '-',
                dt.datetime.fromtimestamp(r['start_ns'] / 1e9).strftime('%Y-%m-%d %H:%M:%S'),
                _ms(r['duration_ms']),
                r['spans'],
                r['errors'] or 0,
                _short(r['task'] or '', 200),
            )
            for r in rows
        ],
        flex='task',
        right=('duration', 'spans', 'errors'),
    )


_STYLE = {'run': 'bold', 'delegate': 'bold magenta', 'agent': 'cyan', 'model': 'green', 'tool': 'yellow'}


def _label(n: TraceNode, routes: dict[str, str] | None = None) -> str:
    from rich.markup import escape

    d = n.details
    # the route as the run's records have it (served model, fallback and why), for a delegation or the run
    route = (routes or {}).get(str(n.attributes.get('proctor.delegation_id') or n.category))
    parts = [
        f'[{_STYLE.get(n.category, "")}]{escape(n.name)}[/]',
        _ms(n.duration_ms) if n.duration_ms is not None else '[red]open[/]',
    ]
    tokens = f'tokens {d["input_tokens"]}+{d.get("output_tokens", 0)}' if 'input_tokens' in d else ''
    if n.category in ('run', 'delegate'):
        if n.category == 'run':
            parts.append(
                'supervisor:'
            )  # the run span's model and usage are its supervisor's own; the header has the run's total
        if route:
            parts += [f'model: {escape(_short(route, 160))}', tokens]  # preferred → served, and why
        else:
            parts += [
                f'model={escape(str(d.get("model", "-")))}',
                f'({escape(_short(d.get("route_reason", ""), 50))})',
                tokens,
            ]
        if 'cost_usd' in d:
            parts.append(f'${d["cost_usd"]:.6f}')
        if n.category == 'delegate':
            parts.append(f'"{escape(_short(d.get("subtask", ""), 60))}"')
        if d.get('resumed'):
            parts.append('[blue](resumed)[/]')
    elif n.category == 'model':
        served = d.get('response_model')
        parts += [
            escape(str(d.get('model', '-')))
            + (f'→{escape(str(served))}' if served and served != d.get('model') else ''),
            escape(str(d.get('provider', ''))),
            tokens,
        ]
        if 'cost_usd' in d:
            parts.append(f'${d["cost_usd"]:.6f}')
    elif n.category == 'agent':
        parts.append(tokens)
    elif n.category == 'tool':
        parts.append(
            escape(_short(d.get('args', ''), 60)) + (f' → {escape(_short(d["result"], 60))}' if 'result' in d else '')
        )
    if n.duration_ms is None and n.category == 'run':
        parts.append('[red](interrupted: its process stopped; see the resumed run below)[/]')
    if 'error' in d:
        parts.append(f'[red]✗ {escape(_short(d["error"], 120))}[/]')
    if 'parent' in d:
        parts.append(f'[dim](parent {d["parent"]})[/]')
    return '  '.join(p for p in parts if p)


def _event_label(e: dict[str, Any]) -> str:
    from rich.markup import escape

    a = e['attributes']
    name = e['name']
    if name == 'proctor.guardrail':
        decision = 'needs approval' if a.get('decision') == 'approve' else str(a.get('decision'))
        return f'[red]⚑ guardrail[/] {escape(str(a.get("hook")))} {escape(str(a.get("guard")))}: {escape(decision)} — {escape(_short(a.get("reason", ""), 100))}'
    if name.startswith('proctor.approval'):
        # a pending approval is waiting for an operator: it never reads as a decision
        a = {**a, 'status': 'waiting for operator'} if a.get('status') == 'pending' else a
        what = ' '.join(f'{k}={escape(_short(v, 40))}' for k, v in a.items())
        return f'[blue]⏸ {escape(name.removeprefix("proctor."))}[/] {what}'
    if name == 'exception':
        return f'[red]✗ {escape(str(a.get("exception.type", "")))}: {escape(_short(a.get("exception.message", ""), 120))}[/]'
    return f'• {escape(name)} {escape(_short(a, 100))}'


@traces_app.command('show')
def show_trace(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help='Run id (or a unique prefix).')],
    as_json: Annotated[bool, typer.Option('--json', help='The tree as one JSON document.')] = False,
    attributes: Annotated[bool, typer.Option('--attributes', help='With --json: every span attribute too.')] = False,
) -> None:
    """One run's trace as a tree: timings, models, tokens, cost, guardrail and approval events."""
    from rich.markup import escape
    from rich.tree import Tree

    from ..state._records import RunRecords
    from ..tracing._view import trace_tree
    from ._output import console

    store = state_from_ctx(ctx)
    view = trace_tree(store, run_id)
    if as_json:
        _echo_json(view.to_json(attributes=attributes))
        return
    rec = RunRecords(store).get(view.run.run_id)
    routes = {d.delegation_id: d.route for d in rec.delegations}
    if rec.model_id or rec.preferred_model:
        routes['run'] = rec.route
    r = view.run
    dur = '-' if r.duration_s is None else _ms(r.duration_s * 1000)
    tree = Tree(
        f'[bold]run {r.run_id}[/] {escape(r.team)}/{escape(r.project)} {escape(f"[{r.data_class}]")} [bold]{escape(r.status)}[/] {dur} '
        f'tokens {r.input_tokens}+{r.output_tokens} ${r.cost_usd:.6f}  trace {view.trace_id or "-"}'
    )
    if not view.roots:
        tree.add('[dim](no spans stored for this run: it ran with trace=False, or was sampled out)[/]')

    def add(parent: Tree, n: TraceNode) -> None:
        branch = parent.add(_label(n, routes))
        for e in n.events:
            branch.add(_event_label(e))
        for c in n.children:
            add(branch, c)

    for root in view.roots:
        add(tree, root)
    console().print(tree)


@traces_app.command('export')
def export_trace(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help='Run id (or a unique prefix).')],
    otlp: Annotated[
        str, typer.Option('--otlp', help='OTLP/HTTP endpoint, e.g. http://localhost:4318 (or its /v1/traces URL).')
    ],
    timeout: Annotated[float, typer.Option(help='Seconds to wait for the collector.')] = 10.0,
) -> None:
    """Send a stored run's spans to an OpenTelemetry collector (OTLP over HTTP)."""
    from urllib.parse import urlparse

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from ..exceptions import UserError
    from ..state._records import RunRecords
    from ..tracing._store import TraceStore

    parsed = urlparse(otlp)
    if parsed.scheme not in ('http', 'https') or not parsed.netloc:
        raise UserError(f'--otlp {otlp!r} is not an http(s) URL')
    url = otlp if parsed.path not in ('', '/') else otlp.rstrip('/') + '/v1/traces'
    store = state_from_ctx(ctx)
    rec = RunRecords(store).get(run_id, with_delegations=False)
    spans = TraceStore(store).readable_spans(rec.run_id, rec.trace_id)
    if not spans:
        raise UserError(f'run {rec.run_id} has no stored spans to export')
    import logging

    exporter = OTLPSpanExporter(endpoint=url, timeout=timeout)
    # The exporter logs every retry on its own; a failure is reported below, in one line.
    otlp_log = logging.getLogger(OTLPSpanExporter.__module__)
    level = otlp_log.level
    otlp_log.setLevel(logging.CRITICAL)
    try:
        result = exporter.export(spans)
    finally:
        exporter.shutdown()
        otlp_log.setLevel(level)
    if result is not SpanExportResult.SUCCESS:
        raise UserError(
            f'the collector at {url} did not accept the {len(spans)} spans of run {rec.run_id} '
            f'(is it running and reachable? gave up after {timeout:g}s)'
        )
    typer.echo(f'exported {len(spans)} spans of run {rec.run_id} (trace {rec.trace_id}) to {url}')


def _parse_models(values: list[str]) -> dict[str, str]:
    from ..exceptions import UserError

    out = {}
    for v in values:
        name, sep, model = v.partition('=')
        if not sep or not name.strip() or not model.strip():
            raise UserError(f'--model {v!r} must look like SPECIALIST=MODEL_ID (e.g. coding=local:smollm2)')
        out[name.strip()] = model.strip()
    return out


def _print_report(report: Any) -> None:
    from rich.markup import escape

    from ._output import console

    con = console()
    con.print(
        f'[bold]replay of {report.run_id}[/]: {report.status}; model calls {report.replayed_model_calls} replayed, '
        f'{report.live_model_calls} live; tool calls {report.replayed_tool_calls} replayed, {report.live_tool_calls} live'
    )
    if report.error:
        con.print(f'[red]error: {escape(_short(report.error, 300))}[/]')
    for n in report.notes:
        con.print(f'[yellow]note[/]: {escape(n)}')
    if report.diff is None:
        if not report.divergences:
            con.print('[green]no divergence: same delegations, tool calls, guardrail decisions and output[/]')
        for d in report.divergences:
            con.print(
                f'[red]diverged[/] at {escape(d.step)}\n  expected: {escape(d.expected)}\n  got:      {escape(d.got)}'
            )
        for d in report.input_changes:
            con.print(
                f'[yellow]note[/]: the model was asked something else at {escape(d.step)} (it answered from the '
                f'recording)\n  recorded: {escape(d.expected)}\n  now:      {escape(d.got)}'
            )
        return
    d = report.diff
    con.print(f'[bold]fork at {escape(d.fork_at)}[/] ({len(d.live_steps)} live model steps)')
    con.print(
        f'  output   - {escape(_short(d.original_output, 300))}\n           + {escape(_short(d.fork_output, 300))}'
    )
    con.print(f'  status   {d.original_status} → {d.fork_status}')
    con.print(f'  tokens   {d.original_tokens[0]}+{d.original_tokens[1]} → {d.fork_tokens[0]}+{d.fork_tokens[1]}')
    unpriced = f' (no price for {", ".join(d.unpriced_models)})' if d.unpriced_models else ''
    con.print(f'  cost     ${d.original_cost_usd:.6f} → ${d.fork_cost_usd:.6f}{escape(unpriced)}')
    for c in d.tool_calls_removed:
        con.print(f'  [red]- {escape(_short(c, 160))}[/]')
    for c in d.tool_calls_added:
        con.print(f'  [green]+ {escape(_short(c, 160))}[/]')
    if not d.tool_calls_removed and not d.tool_calls_added:
        con.print('  tool calls: the same')


@app.command('replay')
def replay_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help='Run id (or a unique prefix), or a recording saved with --save.')],
    as_json: Annotated[bool, typer.Option('--json', help='The report as one JSON document.')] = False,
    fork_at: Annotated[
        str | None,
        typer.Option('--fork-at', help='Model step id, or its number (1 = first), to continue live from.'),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option('--model', help='SPECIALIST=MODEL_ID for the live part of a fork (repeatable).'),
    ] = None,
    team: Annotated[
        str | None, typer.Option(help="Team factory 'module:callable' (default: the recorded one).")
    ] = None,
    save: Annotated[
        str | None,
        typer.Option('--save', help="Write the run's recording to this JSON file (a test fixture) and stop."),
    ] = None,
) -> None:
    """Re-run a recorded run with its recorded model responses and tool results (zero live calls),
    and report any divergence; with --fork-at, continue live from a step and diff against the original."""
    import anyio

    from ..orchestrator._replay import replay
    from ..tracing._recording import Recording

    store = state_from_ctx(ctx)
    if save:
        rec = Recording.from_store(store, run_id)
        path = rec.save(save)
        typer.echo(f'saved the recording of run {rec.run_id} ({len(rec.steps)} steps) to {path}')
        return
    models = _parse_models(model or [])
    report = anyio.run(
        lambda: replay(
            run_id,
            team=team,
            state_dir=store.state_dir,
            database_url=store.database_url,
            fork_at=fork_at,
            models=models or None,
        )
    )
    if as_json:
        _echo_json(report.to_json())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command('verify')
def audit_verify(
    ctx: typer.Context,
    expect_head: Annotated[
        str | None, typer.Option('--expect-head', help='The head hash kept from `proctor audit head`.')
    ] = None,
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
) -> None:
    """Check the hash chain: exit 0 when it holds, 1 naming the first bad record."""
    from ..state._audit import verify_audit

    v = verify_audit(state_from_ctx(ctx), expect_head=expect_head)
    if as_json:
        _echo_json(v.__dict__)
    elif v.ok:
        typer.echo(str(v))
    if not v.ok:
        typer.echo(f'error: {v}', err=True)
        raise typer.Exit(1)


@audit_app.command('head')
def audit_head_cmd(ctx: typer.Context) -> None:
    """Print the last record's number and hash (keep it elsewhere; `verify --expect-head` detects a cut tail)."""
    from ..state._audit import audit_head

    seq, digest = audit_head(state_from_ctx(ctx))
    typer.echo(f'{seq} {digest}')


@audit_app.command('list')
def audit_list(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Option(help='Only this run (exact id).')] = None,
    limit: Annotated[int, typer.Option(help='At most this many records.')] = 200,
    as_json: Annotated[bool, typer.Option('--json', help='One JSON document.')] = False,
) -> None:
    """The audit records, oldest first."""
    from ..state._audit import audit_entries

    entries = audit_entries(state_from_ctx(ctx), run_id=run, limit=limit)
    if as_json:
        _echo_json([e.__dict__ for e in entries])
        return
    from ._output import print_table

    table = []
    for e in entries:
        r = e.record
        who = r.get('agent_path') or r.get('decider') or '-'
        model = r.get('returned_model') or r.get('model_id') or r.get('decision') or '-'
        tokens = f'{r["input_tokens"]}+{r["output_tokens"]}' if 'input_tokens' in r else '-'
        cost = '-' if r.get('cost_usd') is None else f'{r["cost_usd"]:.6f}'
        table.append((e.seq, e.kind, (e.run_id or '-')[:12], who, model, tokens, cost, e.hash[:16]))
    print_table(
        ('seq', 'kind', 'run', 'agent', 'model', 'tokens', 'cost $', 'hash'), table, right=('seq', 'tokens', 'cost $')
    )
