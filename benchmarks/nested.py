"""A 3-level hierarchical team: supervisor → 4 leads → 4 leaves each (16 leaves), durable, recorded, traced.

Every agent takes two model turns: the supervisor and each lead delegate to all their members in
one turn, then answer; each leaf calls one tool, then answers. At latency L per model call the ideal
wall time is 3 levels × 2 turns × L (1.2 s at L=0.2 s), with all 16 leaves' calls in flight at once.

CPU per delegation is measured at L=0 as a marginal cost, so the fixed cost of a run cancels out:
- per top-level delegation: (CPU of supervisor → 16 leaves − CPU of supervisor → 4 leaves) / 12;
- per leaf delegation: (CPU of 1 → 4 → 16 − CPU of 1 → 4 → 4, one leaf per lead) / 12.
The leaves do the same work in both, so the two numbers compare a delegation two levels down with
one from the supervisor. They are measured twice: as a run costs (the garbage collector on), and
with it paused while a run is timed (`gc_paused`, `timeit`'s convention), the figure that leaves out
how much more each collection costs with more objects in flight. Prints one JSON line.

    python benchmarks/nested.py                 # L=0.2 s, 3 timed runs, 9 interleaved CPU rounds
    python benchmarks/nested.py --latency 0.5 --runs 5
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from proctor import Specialist, Supervisor, Team
from proctor.testing import ScriptedModel, delegate, text, tool_call, tool_results, turn_of


class Meter:
    """Model calls in flight across the whole tree."""

    def __init__(self) -> None:
        self.latency = 0.0
        self.inflight = 0
        self.max_inflight = 0
        self.calls = 0

    def reset(self, latency: float) -> None:
        self.latency, self.inflight, self.max_inflight, self.calls = latency, 0, 0, 0


METER = Meter()


def _model(name: str, answer: Any) -> ScriptedModel:
    async def call(messages: list[Any]) -> Any:
        METER.calls += 1
        METER.inflight += 1
        METER.max_inflight = max(METER.max_inflight, METER.inflight)
        try:
            if METER.latency:
                await anyio.sleep(METER.latency)
        finally:
            METER.inflight -= 1
        return answer(messages)

    return ScriptedModel(call, name=name)


def note(text_: str) -> str:
    """Take a note."""
    return f'noted {len(text_)}'


def leaf(name: str) -> Specialist:
    def answer(messages: list[Any]) -> Any:
        if turn_of(messages) == 0:
            return [tool_call('note', {'text_': f'{name} was here'})]
        return text(f'{name} done')

    return Specialist(name, f'The {name}.', model=_model(f'{name}-model', answer), tools=[note])


def leader_model(name: str, members: list[str]) -> ScriptedModel:
    def answer(messages: list[Any]) -> Any:
        if turn_of(messages) == 0:
            return [delegate(m, f'part {m}') for m in members]
        return text(f'{name}: {len(tool_results(messages))} results')

    return _model(f'{name}-model', answer)


def tree_team(store: Path, leads: int, leaves: int, *, name: str) -> Team:
    """supervisor → `leads` leads → `leaves` leaves each."""
    members = [
        Specialist(
            f'lead{i}',
            'Lead.',
            model=leader_model(f'lead{i}', [f'leaf{j}' for j in range(leaves)]),
            team=[leaf(f'leaf{j}') for j in range(leaves)],
        )
        for i in range(leads)
    ]
    return Team(
        Supervisor(model=leader_model('supervisor', [m.name for m in members])),
        members,
        name=name,
        state_dir=store,
    )


def flat_team(store: Path, leaves: int, *, name: str) -> Team:
    members = [leaf(f'leaf{j}') for j in range(leaves)]
    return Team(
        Supervisor(model=leader_model('supervisor', [m.name for m in members])), members, name=name, state_dir=store
    )


async def _cpu_per_run(teams: dict[str, Team], rounds: int, *, gc_paused: bool = False) -> dict[str, float]:
    """Median CPU seconds per run of each team at L=0, the teams taking turns, each round starting
    with the next one (drift on a noisy machine, and whatever one run leaves the next, hit them alike).
    `gc_paused`: the garbage collector is paused while a run is timed (collected before), as
    `timeit` does by default: a generation-2 collection that one run's garbage triggers in a later
    run lands at random in one sample, and a run with more objects in flight pays more per collection."""
    METER.reset(0.0)
    for team in teams.values():
        await team.run('warm up')
    samples: dict[str, list[float]] = {k: [] for k in teams}
    order = list(teams.items())
    for i in range(rounds):
        for key, team in order[i % len(order) :] + order[: i % len(order)]:
            if gc_paused:
                gc.collect()
                gc.disable()
            try:
                t = time.process_time()
                result = await team.run(f'go {i}')
                samples[key].append(time.process_time() - t)
            finally:
                gc.enable()
            assert result.status == 'succeeded', result
    return {k: statistics.median(v) for k, v in samples.items()}


def _per_delegation(cpu: dict[str, float]) -> tuple[float, float]:
    """(CPU ms per leaf delegation, per top-level delegation), as marginal costs."""
    return (cpu['tree_1_4_16'] - cpu['tree_1_4_4']) / 12 * 1000, (cpu['flat_16'] - cpu['flat_4']) / 12 * 1000


async def _main(latency: float, runs: int, cpu_runs: int) -> dict[str, Any]:
    store = Path(tempfile.mkdtemp(prefix='proctor-nested-bench-'))
    tree = tree_team(store, 4, 4, name='tree16')
    await tree.run('warm up')  # launches DBOS, builds everything once
    walls, inflight, calls = [], [], []
    for i in range(runs):
        METER.reset(latency)
        t = time.perf_counter()
        result = await tree.run(f'timed {i}')
        walls.append(time.perf_counter() - t)
        inflight.append(METER.max_inflight)
        calls.append(METER.calls)
        assert result.status == 'succeeded' and len(result.delegations) == 20, result

    shapes = {
        'tree_1_4_16': tree,
        'tree_1_4_4': tree_team(store, 4, 1, name='tree4'),
        'flat_16': flat_team(store, 16, name='flat16'),
        'flat_4': flat_team(store, 4, name='flat4'),
    }
    cpu = await _cpu_per_run(shapes, cpu_runs)
    leaf_ms, top_ms = _per_delegation(cpu)
    cpu_paused = await _cpu_per_run(shapes, cpu_runs, gc_paused=True)
    leaf_paused, top_paused = _per_delegation(cpu_paused)
    ideal = 3 * 2 * latency
    wall = statistics.median(walls)
    return {
        'bench': 'proctor-nested-tree',
        'shape': '1 -> 4 -> 16 leaves (21 agents, 20 delegations, 42 model calls per run)',
        'features': 'durable, recorded, traced (the defaults)',
        'latency_s': latency,
        'runs': runs,
        'cpu_rounds': cpu_runs,
        'wall_s': round(wall, 3),
        'wall_s_all': [round(w, 3) for w in walls],
        'ideal_s': round(ideal, 3),
        'wall_over_ideal': round(wall / ideal, 3) if ideal else None,
        'model_calls_per_run': calls[0],
        'max_inflight_model_calls': max(inflight),
        'cpu_ms_per_leaf_delegation': round(leaf_ms, 2),
        'cpu_ms_per_top_level_delegation': round(top_ms, 2),
        'cpu_ms_per_run': {k: round(v * 1000, 1) for k, v in cpu.items()},
        'gc_paused': {
            'cpu_ms_per_leaf_delegation': round(leaf_paused, 2),
            'cpu_ms_per_top_level_delegation': round(top_paused, 2),
            'cpu_ms_per_run': {k: round(v * 1000, 1) for k, v in cpu_paused.items()},
        },
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('--latency', type=float, default=0.2)
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--cpu-runs', type=int, default=9, help='interleaved rounds of the four shapes at L=0')
    a = p.parse_args()
    print(json.dumps(anyio.run(_main, a.latency, a.runs, a.cpu_runs)), flush=True)


if __name__ == '__main__':
    main()
