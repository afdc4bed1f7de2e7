"""Comparing two recordings of one task: replay divergences, and the diff of a fork against its original."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic_ai.messages import ToolCallPart

from ._recording import RecordedStep, Recording

__all__ = ('Divergence', 'ForkDiff', 'divergences', 'input_changes', 'fork_diff')

_CALL_KINDS = ('tool', 'delegate', 'tool_error')


@dataclass(frozen=True)
class Divergence:
    """Where a replay left the recorded path: the step, what was recorded there, what happened instead."""

    step: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f'{self.step}: expected {self.expected}, got {self.got}'


def _short(value: Any, n: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    text = ' '.join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + '…'


def _call_order(rec: Recording) -> dict[str, list[str]]:
    """Per scope, the tool call steps in the order the model asked for them (request, then position)."""
    out: dict[str, list[str]] = {}
    models = sorted((s for s in rec.steps if s.kind == 'model'), key=lambda s: (s.scope, s.index or 0))
    for s in models:
        for part in s.response().parts:
            if isinstance(part, ToolCallPart):
                out.setdefault(s.scope, []).append(f'{s.scope}#tool:{part.tool_call_id}@{s.index}')
    return out


def _outcome(s: RecordedStep) -> str:
    p = s.payload
    if s.kind == 'tool_error':
        return f'{"retry" if p.get("retry") else "error"}: {_short(p.get("message"), 120)}'
    return f'→ {_short(p.get("result"), 120)}'


def _call(s: RecordedStep | None) -> str:
    if s is None:
        return '(no call)'
    return f'{s.payload.get("tool")}({_short(s.payload.get("args"), 120)})'


def _executed(rec: Recording) -> dict[str, list[RecordedStep]]:
    by = rec.by_step()
    out: dict[str, list[RecordedStep]] = {}
    for scope, steps in _call_order(rec).items():
        out[scope] = [by[s] for s in steps if s in by and by[s].kind in _CALL_KINDS]
    return out


def divergences(expected: Recording, got: Recording) -> list[Divergence]:
    """Delegations and tool calls per agent run, guardrail decisions per agent, model requests made
    and the final outcome, in order: the first difference in each is a divergence."""
    out: list[Divergence] = []
    exp_calls, got_calls = _executed(expected), _executed(got)
    for scope in dict.fromkeys([*exp_calls, *got_calls]):
        a, b = exp_calls.get(scope, []), got_calls.get(scope, [])
        for i in range(max(len(a), len(b))):
            e, g = (a[i] if i < len(a) else None), (b[i] if i < len(b) else None)
            step = (e or g).step  # type: ignore[union-attr]
            if e is None or g is None or e.step != g.step or _call(e) != _call(g):
                out.append(Divergence(step, _call(e), _call(g)))
                break
            if _outcome(e) != _outcome(g):
                out.append(Divergence(step, f'{_call(e)} {_outcome(e)}', f'{_call(g)} {_outcome(g)}'))
                break
    got_models = {s.step for s in got.steps if s.kind in ('model', 'model_error')}
    stopped: set[str] = set()  # one per agent run: the first request the replay never made
    for s in expected.steps:
        if s.kind == 'model' and s.scope not in stopped and s.step not in got_models:
            stopped.add(s.scope)
            out.append(Divergence(s.step, 'a model request', '(none: the replay stopped before it)'))
    out.extend(_guard_divergences(expected.guard_decisions, got.guard_decisions))
    if expected.status != got.status:
        out.append(
            Divergence(
                'run#status',
                f'{expected.status}{": " + _short(expected.error) if expected.error else ""}',
                f'{got.status}{": " + _short(got.error) if got.error else ""}',
            )
        )
    elif _short(expected.output, 10_000) != _short(got.output, 10_000):
        out.append(Divergence('run#output', _short(expected.output), _short(got.output)))
    return out


def input_changes(expected: Recording, got: Recording) -> list[Divergence]:
    """Model requests whose input differs from the recorded one (the first per agent run). The
    recorded answer was used anyway, so these are not divergences; they say what changed: a prompt,
    instructions that read something that has changed since (a file), a tool's description."""
    got_models = {s.step: s for s in got.steps if s.kind == 'model'}
    out: list[Divergence] = []
    seen: set[str] = set()
    for s in expected.steps:
        g = got_models.get(s.step)
        if s.kind != 'model' or g is None or s.scope in seen:
            continue
        a, b = s.payload.get('input_hash'), g.payload.get('input_hash')
        if a and b and a != b:
            seen.add(s.scope)
            tail_a, tail_b = s.payload.get('input_tail', ''), g.payload.get('input_tail', '')
            if tail_a == tail_b:
                out.append(
                    Divergence(
                        s.step,
                        'the recorded instructions and history',
                        f'other instructions or history (same last message "{_short(tail_a, 80)}")',
                    )
                )
            else:
                out.append(Divergence(s.step, f'last message "{tail_a}"', f'last message "{tail_b}"'))
    return out


def _guard_divergences(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[Divergence]:
    def per_path(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
        d: dict[str, list[str]] = {}
        for r in rows:
            d.setdefault(r['agent_path'], []).append(f'{r["hook"]} {r["guard"]}: {r["decision"]}')
        return d

    a, b = per_path(expected), per_path(got)
    out = []
    for path in dict.fromkeys([*a, *b]):
        ea, gb = a.get(path, []), b.get(path, [])
        if ea == gb or Counter(ea) == Counter(gb):  # same decisions; parallel branches may interleave
            continue
        i = next(i for i in range(max(len(ea), len(gb))) if (ea[i : i + 1] or None) != (gb[i : i + 1] or None))
        out.append(
            Divergence(
                f'{path}#guard:{i + 1}',
                ea[i] if i < len(ea) else '(no decision)',
                gb[i] if i < len(gb) else '(no decision)',
            )
        )
    return out


@dataclass
class ForkDiff:
    """A fork against its original: outputs, tool calls, tokens and cost."""

    fork_at: str
    original_output: Any
    fork_output: Any
    original_status: str
    fork_status: str
    tool_calls_removed: list[str] = field(default_factory=list)
    tool_calls_added: list[str] = field(default_factory=list)
    original_tokens: tuple[int, int] = (0, 0)
    fork_tokens: tuple[int, int] = (0, 0)
    original_cost_usd: float = 0.0
    fork_cost_usd: float = 0.0
    live_steps: list[str] = field(default_factory=list)
    unpriced_models: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _tokens(rec: Recording) -> tuple[int, int]:
    i = o = 0
    for s in rec.steps:
        if s.kind == 'model':
            u = s.response().usage
            i, o = i + u.input_tokens, o + u.output_tokens
    return i, o


def _calls(rec: Recording) -> Counter[str]:
    return Counter(
        f'{s.payload.get("agent_path")}: {s.payload.get("tool")}({_short(s.payload.get("args"), 200)})'
        for s in rec.steps
        if s.kind in _CALL_KINDS
    )


def fork_diff(
    original: Recording,
    fork: Recording,
    *,
    fork_at: str,
    live_steps: list[str],
    cost_of: Callable[[RecordedStep], float | None],
) -> ForkDiff:
    """`cost_of(step)` prices one model step of the fork (None: the model has no known price)."""
    a, b = _calls(original), _calls(fork)
    cost, unpriced = 0.0, set()
    for s in fork.steps:
        if s.kind == 'model':
            c = cost_of(s)
            if c is None:
                unpriced.add(str(s.payload.get('model_id')))
            else:
                cost += c
    return ForkDiff(
        fork_at=fork_at,
        original_output=original.output,
        fork_output=fork.output,
        original_status=original.status,
        fork_status=fork.status,
        tool_calls_removed=sorted((a - b).elements()),
        tool_calls_added=sorted((b - a).elements()),
        original_tokens=_tokens(original),
        fork_tokens=_tokens(fork),
        original_cost_usd=original.cost_usd,
        fork_cost_usd=cost,
        live_steps=live_steps,
        unpriced_models=sorted(unpriced),
    )
