"""Where durable execution's cost comes from: the K=1 workload's shape, durable, with and without proctor.

Seven variants, each in its own interpreter (DBOS is process-global), CPU ms per run over --runs runs:

- `dbos-workflow`: one empty DBOS workflow per run, started and awaited: the floor of any design
  in which a team run is a DBOS workflow;
- `dbos-workflow-proctor`: the same empty workflow on DBOS as proctor launches it on a SQLite state
  store (`proctor.state._dbos.ensure_launched`: DBOS's bookkeeping around the workflow runs inline,
  no thread hops), called in the caller's task as `team.run` does;
- `dbos`: DBOS alone: a workflow with one child workflow and three async steps (the statements a
  durable K=1 team run makes), on proctor's SQLite engine settings;
- `pydantic-ai`: a supervisor agent delegating to a worker agent through a tool, no durability;
- `pydantic-ai+dbos`: the same with pydantic-ai's `DBOSDurability` on both agents, the delegation tool
  a DBOS child workflow, inside a DBOS workflow (what proctor's durable run is built on);
- `proctor-none` / `proctor-durable`: benchmarks/overhead.py's team, features none / durability.

    python benchmarks/durable_baseline.py --runs 300     # one JSON line
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic_ai import RunContext  # module level: the delegation tool's annotation is resolved from here

HERE = Path(__file__).resolve().parent
VARIANTS = (
    'dbos-workflow',
    'dbos-workflow-proctor',
    'dbos',
    'pydantic-ai',
    'pydantic-ai+dbos',
    'proctor-none',
    'proctor-durable',
)


def _launch_dbos(name: str) -> None:
    from dbos import DBOS

    from proctor.state._dbos import EXECUTOR_THREADS, _sqlite_engine

    url = f'sqlite:///{tempfile.mkdtemp(prefix="proctor-durable-baseline-")}/dbos.sqlite'
    os.environ.setdefault('DBOS__CLOUD', '')
    DBOS(
        config={
            'name': name,
            'system_database_url': url,
            'enable_otlp': False,
            'log_level': 'WARNING',
            'max_executor_threads': EXECUTOR_THREADS,
            'system_database_engine': _sqlite_engine(url),
        }
    )


def _timed(run_once: Any, runs: int) -> float:
    async def many(n: int) -> None:
        for _ in range(n):
            await run_once()

    asyncio.run(many(10))
    t = time.process_time()
    asyncio.run(many(runs))
    return round((time.process_time() - t) * 1000 / runs, 2)


def _dbos_workflow(runs: int) -> float:
    from dbos import DBOS

    _launch_dbos('baseline-dbos-workflow')

    @DBOS.workflow()
    async def run(x: str) -> str:
        return x

    DBOS.launch()

    async def once() -> None:
        await (await DBOS.start_workflow_async(run, 'x')).get_result()

    return _timed(once, runs)


def _dbos_workflow_proctor(runs: int) -> float:
    from dbos import DBOS, SetWorkflowID

    from proctor.state import _dbos
    from proctor.state._store import StateStore

    @DBOS.workflow(name='baseline.empty')
    async def run(x: str) -> str:
        return x

    _dbos.ensure_launched(StateStore(tempfile.mkdtemp(prefix='proctor-durable-baseline-')))
    ids = iter(range(10**9))

    async def once() -> None:
        with SetWorkflowID(f'empty-{next(ids)}'):
            await run('x')

    return _timed(once, runs)


def _dbos(runs: int) -> float:
    from dbos import DBOS

    _launch_dbos('baseline-dbos')

    @DBOS.step()
    async def model_call(x: str) -> str:
        return x + '!'

    @DBOS.workflow()
    async def child(x: str) -> str:
        return await model_call(x)

    @DBOS.workflow()
    async def parent(x: str) -> str:
        return await model_call(await child(await model_call(x)))

    DBOS.launch()

    async def once() -> None:
        await (await DBOS.start_workflow_async(parent, 'x')).get_result()

    return _timed(once, runs)


def _pydantic_ai(runs: int, *, durable: bool) -> float:
    from pydantic_ai import Agent, Tool
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel
    from pydantic_ai.toolsets import FunctionToolset

    async def worker_llm(messages: Any, info: Any) -> ModelResponse:
        return ModelResponse(parts=[TextPart('research:done:subtask-0')])

    async def supervisor_llm(messages: Any, info: Any) -> ModelResponse:
        for m in messages:
            for p in getattr(m, 'parts', []):
                if isinstance(p, ToolReturnPart):
                    return ModelResponse(parts=[TextPart(f'FINAL[{p.content}]')])
        return ModelResponse(parts=[ToolCallPart('delegate', {'subtask': 'subtask-0'}, tool_call_id='c0')])

    def caps(name):
        return []

    if durable:
        from pydantic_ai.durable_exec.dbos import DBOSDurability

        _launch_dbos('baseline-pydantic-ai')
        caps = lambda name: [DBOSDurability(name=name)]  # noqa: E731
    worker = Agent(FunctionModel(worker_llm), name='worker', capabilities=caps('worker'))

    async def delegate(ctx: RunContext[None], subtask: str) -> str:
        return (await worker.run(subtask)).output

    meta = {'dbos': {'child_workflow': {}}} if durable else None
    toolset = FunctionToolset([Tool(delegate)], id='delegation', metadata=meta)
    supervisor = Agent(
        FunctionModel(supervisor_llm), name='supervisor', toolsets=[toolset], capabilities=caps('supervisor')
    )
    if not durable:

        async def once() -> None:
            assert (await supervisor.run('go')).output == 'FINAL[research:done:subtask-0]'

        return _timed(once, runs)
    from dbos import DBOS

    @DBOS.workflow(name='baseline.team_run')
    async def team_run(task: str) -> str:
        return (await supervisor.run(task)).output

    DBOS.launch()

    async def durable_once() -> None:
        out = await (await DBOS.start_workflow_async(team_run, 'go')).get_result()
        assert out == 'FINAL[research:done:subtask-0]'

    return _timed(durable_once, runs)


def _proctor(runs: int, features: str) -> float:
    sys.argv = [sys.argv[0]]
    sys.path.insert(0, str(HERE))
    import overhead as O

    O.build(O._features(features))
    O.C.FakeLLM.configure(k=1, latency=0.0)
    return _timed(O.run_team, runs)


def _one(variant: str, runs: int) -> float:
    if variant == 'dbos-workflow':
        return _dbos_workflow(runs)
    if variant == 'dbos-workflow-proctor':
        return _dbos_workflow_proctor(runs)
    if variant == 'dbos':
        return _dbos(runs)
    if variant in ('pydantic-ai', 'pydantic-ai+dbos'):
        return _pydantic_ai(runs, durable=variant.endswith('+dbos'))
    return _proctor(runs, 'durability' if variant == 'proctor-durable' else 'none')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--runs', type=int, default=300)
    p.add_argument('--variant', choices=VARIANTS, help=argparse.SUPPRESS)  # one variant, in this interpreter
    a = p.parse_args()
    if a.variant:
        print(json.dumps({'variant': a.variant, 'cpu_ms_per_run': _one(a.variant, a.runs)}), flush=True)
        return
    out: dict[str, Any] = {'bench': 'proctor-durable-baseline', 'runs': a.runs}
    for v in VARIANTS:
        proc = subprocess.run(
            [sys.executable, __file__, '--variant', v, '--runs', str(a.runs)], capture_output=True, text=True
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
        if proc.returncode != 0 or not lines:
            out[f'{v}_error'] = (proc.stderr.strip().splitlines() or ['no output'])[-1][:300]
            continue
        out[f'{v}_cpu_ms_per_run'] = json.loads(lines[-1])['cpu_ms_per_run']
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
