"""Variants taking turns in one process, batch after batch: the measuring loop of `feature_costs.py`,
`agent_shape.py` and `floor.py`. On a machine whose speed drifts within minutes, drift then hits
every variant alike, and a difference paired by turn (one variant's batch minus another's of the
same turn) is steadier than a difference of medians. Standard library only."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

__all__ = ('paired_median', 'take_turns')


async def take_turns(
    run: Callable[[str], Awaitable[object]],
    variants: Sequence[str],
    *,
    batches: int,
    batch: int,
    shuffle: bool = False,
) -> dict[str, list[float]]:
    """CPU ms per run of each variant's batch in each of `batches` turns (`run(variant)` is one run;
    a turn runs `batch` of every variant). `shuffle`: a new order each turn (seeded), so no variant
    always follows the same one."""
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    order = list(variants)
    mix = random.Random(0).shuffle
    for _ in range(batches):
        if shuffle:
            mix(order)
        for v in order:
            t = time.process_time()
            for _ in range(batch):
                await run(v)
            cpu[v].append((time.process_time() - t) * 1000 / batch)
    return cpu


def paired_median(a: Sequence[float], b: Sequence[float]) -> float:
    """The median of a's batch minus b's batch of the same turn."""
    return statistics.median(x - y for x, y in zip(a, b, strict=True))
