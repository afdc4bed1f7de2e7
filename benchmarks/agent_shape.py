"""What the shape of proctor's agents costs inside pydantic-ai: the peers' bare pydantic-ai team
(../shared/BENCHMARK.md, K=1) against the same agents shaped as a proctor team builds them, in one
process taking turns (blocks of 100 runs), so a noisy machine's drift hits every variant alike.

- `bare`: the peers' agents as they are;
- `proctor`: with proctor's observer capability on every agent (`ObserverCapability` without
  observers: its hooks pass through), which is also the agent's `ToolSearch`, and the supervisor's
  delegation tools in its own toolset, as `Team` builds them;
- `+capability`: `proctor` plus one more capability beside it (what the observer cost before it
  stood in for the `ToolSearch` pydantic-ai adds to every agent: pydantic-ai copies the run context
  for each capability at each hook);
- `+toolset`: `proctor` with the delegation tools in a second toolset (what that toolset cost:
  pydantic-ai gathers over an agent's toolsets in a task group at each step).

    python benchmarks/agent_shape.py               # 30 blocks of 100 runs per variant

Prints one JSON line: the median CPU ms per run of each variant, and each one's median difference
to `proctor` over the blocks (paired by block).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import overhead as O  # noqa: E402  (puts the peers' harness, ../shared/benchmark, on the path)
from _turns import paired_median, take_turns  # noqa: E402

C = O.C
import pydantic_ai_bench as B  # noqa: E402
from pydantic_ai import Agent, RunContext  # noqa: E402
from pydantic_ai.capabilities.abstract import AbstractCapability  # noqa: E402
from pydantic_ai.models.function import FunctionModel  # noqa: E402
from pydantic_ai.tools import Tool  # noqa: E402
from pydantic_ai.toolsets import FunctionToolset  # noqa: E402

from proctor.core import RunDeps  # noqa: E402
from proctor.orchestrator._observers import ObserverCapability  # noqa: E402

VARIANTS = ('bare', 'proctor', '+capability', '+toolset')


class _Beside(AbstractCapability[Any]):
    """A capability with the observer's four hooks, passing through (not a `ToolSearch`)."""

    async def wrap_run(self, ctx: Any, *, handler: Any) -> Any:
        return await handler()

    async def wrap_model_request(self, ctx: Any, *, request_context: Any, handler: Any) -> Any:
        return await handler(request_context)

    async def wrap_tool_execute(self, ctx: Any, *, call: Any, tool_def: Any, args: Any, handler: Any) -> Any:
        return await handler(args)

    async def wrap_output_process(self, ctx: Any, *, output_context: Any, output: Any, handler: Any) -> Any:
        return await handler(output)


def _capabilities(variant: str) -> list[Any]:
    if variant == 'bare':
        return []
    caps: list[Any] = [ObserverCapability([], {})]
    if variant == '+capability':
        caps.append(_Beside())
    return caps


def build(variant: str) -> Agent[Any, str]:
    workers = {
        w: Agent(
            B.make_worker_model(w),
            name=w,
            instructions=f'You are the {w} worker. Do the subtask you are given.',
            capabilities=_capabilities(variant),
        )
        for w in C.WORKERS
    }

    def delegate_to(agent: Agent[Any, str]) -> Any:
        async def delegate(ctx: RunContext[Any], task: str) -> str:
            return (await agent.run(task, usage=ctx.usage, deps=ctx.deps)).output

        return delegate

    tools = [Tool(delegate_to(workers[w]), name=f'ask_{w}') for w in C.WORKERS]
    where: dict[str, Any] = {'toolsets': [FunctionToolset(tools)]} if variant == '+toolset' else {'tools': tools}
    return Agent(
        FunctionModel(B.supervisor_llm, model_name='fake-supervisor'),
        name=C.SUPERVISOR,
        instructions='You are the supervisor. Split the task into subtasks and delegate them to the workers.',
        capabilities=_capabilities(variant),
        **where,
    )


# What a team run hands its agents (the observer keys its calls by it); the bare agents ignore it.
DEPS = RunDeps(run_id='r', team='t', project='p', data_class='internal', agent_path='supervisor', specialist='s')


async def main(blocks: int, block: int) -> dict[str, Any]:
    C.FakeLLM.configure(k=1, latency=0.0)
    sups = {v: build(v) for v in VARIANTS}
    for sup in sups.values():
        for _ in range(30):  # warm-up
            await sup.run(C.USER_TASK, deps=DEPS)
    per = await take_turns(lambda v: sups[v].run(C.USER_TASK, deps=DEPS), VARIANTS, batches=blocks, batch=block)
    return {
        'bench': 'agent-shape',
        'k': 1,
        'blocks': blocks,
        'runs_per_block': block,
        'cpu_ms_per_run_median': {v: round(statistics.median(x), 3) for v, x in per.items()},
        'minus_proctor_ms_median': {
            v: round(paired_median(per[v], per['proctor']), 3) for v in VARIANTS if v != 'proctor'
        },
    }


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--blocks', type=int, default=30)
    p.add_argument('--block', type=int, default=100, help='runs per variant per block')
    a = p.parse_args()
    print(json.dumps(asyncio.run(main(a.blocks, a.block))), flush=True)
