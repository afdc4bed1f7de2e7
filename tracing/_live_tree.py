"""`LiveTree`: a team run as a live terminal tree (supervisor → each delegation), for the demo and scripts.

Each node shows the agent, its model, its status (running / done / failed), its tokens and elapsed
time. On a terminal the tree redraws in place (rich `Live`); anywhere else (a pipe, a CI log) it
degrades to one plain line per run or delegation event, so logs stay readable and greppable.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import ModelResponse
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text
from rich.tree import Tree

from ..core._events import ModelCall, RunEvent, RunObserver

__all__ = ('LiveTree',)

_STYLE = {'running': 'yellow', 'done': 'green', 'failed': 'bold red'}


def _short(value: Any, n: int) -> str:
    text = ' '.join(str(value).split()) if value is not None else ''
    return text if len(text) <= n else text[: n - 1] + '…'


@dataclass
class _Node:
    name: str
    agent_path: str
    subtask: str | None
    model_id: str | None
    started: float = field(default_factory=time.perf_counter)
    status: str = 'running'
    input_tokens: int = 0
    output_tokens: int = 0
    elapsed_s: float | None = None  # set when finished
    detail: str | None = None  # output or error, shortened
    children: list[_Node] = field(default_factory=list)

    def elapsed(self) -> float:
        return self.elapsed_s if self.elapsed_s is not None else time.perf_counter() - self.started

    def walk(self) -> list[_Node]:
        out: list[_Node] = [self]
        for c in self.children:
            out.extend(c.walk())
        return out

    def finish(self, e: RunEvent, status: str) -> None:
        self.status = status
        self.elapsed_s = e.elapsed_s or self.elapsed()
        if e.input_tokens or e.output_tokens:  # the event's totals are authoritative
            self.input_tokens, self.output_tokens = e.input_tokens, e.output_tokens
        self.model_id = e.model_id or self.model_id
        self.detail = _short(e.error if status == 'failed' else e.output, 160)


class LiveTree(RunObserver):
    """Shows runs as a tree while they happen: pass it in `Team(observers=[...])`, use it as a context manager.

    `live=None` (the default) picks the live redrawing tree when the console is a terminal and plain
    lines otherwise. Callers may rely on the plain-line format: `run <id8> started|done|failed ...`
    and `  <agent_path> started|done|failed ...`, one line per event, flushed as it happens.
    """

    def __init__(
        self, console: Console | None = None, *, live: bool | None = None, refresh_per_second: float = 4
    ) -> None:
        self.console = console or Console()
        self.live = self.console.is_terminal if live is None else live
        self.refresh_per_second = refresh_per_second
        self._roots: dict[str, _Node] = {}
        self._lock = threading.RLock()
        self._live: Live | None = None

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> LiveTree:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop redrawing (the last frame stays on screen)."""
        with self._lock:
            live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _start_live(self) -> None:
        if self.live and self._live is None:
            self._live = Live(
                console=self.console,
                get_renderable=self.render,
                refresh_per_second=self.refresh_per_second,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    # ------------------------------------------------------------ observer hooks

    def on_event(self, event: RunEvent) -> None:
        with self._lock:
            line = self._apply(event)
            all_done = all(r.status != 'running' for r in self._roots.values())
        if line is None:
            return
        if not self.live:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
            self.console.file.flush()
        elif all_done:
            self.close()  # the final frame stays on screen
        elif self._live is not None:
            self._live.refresh()

    async def after_model_call(self, call: ModelCall, response: ModelResponse) -> None:
        # Live token counts while an agent works; its finish event later sets the exact totals.
        with self._lock:
            root = self._roots.get(call.deps.run_id)
            if root is None:
                return
            for node in root.walk():
                if node.agent_path == call.deps.agent_path and node.status == 'running':
                    node.input_tokens += response.usage.input_tokens
                    node.output_tokens += response.usage.output_tokens
                    return

    # ------------------------------------------------------------ state

    def _apply(self, e: RunEvent) -> str | None:
        """Update the tree for `e`; the plain line describing it, or None for a repeat (recovery re-emits)."""
        rid = e.run_id[:8]
        if e.kind == 'run_started':
            old = self._roots.get(e.run_id)
            if old is not None and old.status == 'running':
                return None
            self._roots[e.run_id] = _Node(e.specialist, e.agent_path, e.subtask, e.model_id)
            self._start_live()
            return f'run {rid} started: {e.agent_path} on {e.model_id or "?"}; task: {_short(e.subtask, 120)}'
        root = self._roots.get(e.run_id)
        if root is None:  # joined mid-run (a resumed run): start a root for it
            root = self._roots[e.run_id] = _Node('supervisor', 'supervisor', None, None)
            self._start_live()
        if e.kind in ('run_finished', 'run_failed'):
            if root.status != 'running':
                return None
            status = 'done' if e.kind == 'run_finished' else 'failed'
            root.finish(e, status)
            tin = sum(n.input_tokens for n in root.walk())
            tout = sum(n.output_tokens for n in root.walk())
            tail = f'error: {root.detail}' if status == 'failed' else f'tokens {tin}+{tout}'
            return f'run {rid} {status} in {root.elapsed():.1f}s, {tail}'
        nodes = [n for n in root.walk() if n.agent_path == e.agent_path and n.subtask == e.subtask]
        if e.kind == 'delegation_started':
            if nodes:
                return None
            parent_path = e.agent_path.rpartition('>')[0]
            # its lead: the running node of the parent path (a sub-team's member), else the run's root
            parent = next(
                (n for n in reversed(root.walk()) if n.agent_path == parent_path and n.status == 'running'),
                next((n for n in reversed(root.walk()) if n.agent_path == parent_path), root),
            )
            parent.children.append(_Node(e.specialist, e.agent_path, e.subtask, e.model_id))
            return f'  {e.agent_path} started on {e.model_id or "?"}: {_short(e.subtask, 100)}'
        running = [n for n in nodes if n.status == 'running']
        if not running:
            return None
        node = running[0]
        status = 'done' if e.kind == 'delegation_finished' else 'failed'
        node.finish(e, status)
        return (
            f'  {e.agent_path} {status} in {node.elapsed():.1f}s, {node.input_tokens}+{node.output_tokens} tokens: '
            f'{node.detail}'
        )

    # ------------------------------------------------------------ rendering

    def _label(self, n: _Node) -> Text:
        t = Text()
        t.append(n.name, style='bold')
        t.append(f'  {n.model_id or "?"}', style='cyan')
        t.append(f'  {n.status}', style=_STYLE.get(n.status, ''))
        t.append(f'  {n.input_tokens}+{n.output_tokens} tok  {n.elapsed():.1f}s', style='dim')
        text = n.subtask if n.status == 'running' else n.detail
        if text:
            t.append(f'\n{_short(text, 100)}', style='dim' if n.status != 'failed' else 'red')
        return t

    def render(self) -> Group:
        """The current frame: one tree per run seen."""
        with self._lock:
            trees = []
            for run_id, root in self._roots.items():
                tree = Tree(Text.assemble(('run ', 'dim'), (run_id[:8], 'bold'), ('  ', ''), self._label(root)))
                self._grow(tree, root)
                trees.append(tree)
            return Group(*trees)

    def _grow(self, tree: Tree, node: _Node) -> None:
        for child in node.children:
            self._grow(tree.add(self._label(child)), child)
