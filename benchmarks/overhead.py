"""The peers' orchestration-overhead workload (../shared/BENCHMARK.md) through proctor's public API.

One supervisor and three workers (research, coding, review), each a proctor `Specialist` with its
own scripted model (`proctor.testing.ScriptedModel`, a pydantic-ai `FunctionModel`); the supervisor
delegates K subtasks in one turn through proctor's native delegation tools and answers from the
results it received. Prints one JSON line with the same keys as the peers' scripts.

    python benchmarks/overhead.py                       # all features on (the default a user gets)
    python benchmarks/overhead.py --features none       # durability, tracing, guardrails, ledger, recording off
    python benchmarks/overhead.py --features durability,tracing --k 200
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = next(
    (p for p in (HERE.parent.parent / 'shared' / 'benchmark', HERE / 'peers') if (p / '_common.py').exists()), None
)
if SHARED is None:  # pragma: no cover
    raise SystemExit("benchmarks/overhead.py needs ../shared/benchmark/_common.py (the peers' harness)")
sys.path.insert(0, str(SHARED))

import _common as C  # noqa: E402

IMPORT_STMT = (
    'from proctor import Team, Supervisor, Specialist\n'
    'from proctor.testing import ScriptedModel, delegate, text, tool_results, last_user_prompt'
)
exec(IMPORT_STMT)  # the same imports the import-time probe measures

FEATURES = ('durability', 'tracing', 'guardrails', 'ledger', 'recording')
TEAM: dict[str, object] = {}
STATE = tempfile.mkdtemp(prefix='proctor-bench-')


def _features(spec: str) -> set[str]:
    """A feature spec: `all`, `none` or a comma list; `+pai` at the end (`all+pai`, `tracing+pai`):
    tracing through pydantic-ai's `Instrumentation` instead of proctor's own spans."""
    if spec.endswith('+pai'):
        return _features(spec[: -len('+pai')]) | {'pydantic-ai-instrumentation'}
    if spec in ('all', ''):
        return set(FEATURES)
    if spec == 'none':
        return set()
    chosen = {f.strip() for f in spec.split(',') if f.strip()}
    unknown = chosen - set(FEATURES)
    if unknown:
        raise SystemExit(f'unknown feature(s) {sorted(unknown)}; choose from {FEATURES}')
    return chosen


def make_worker_model(worker: str):
    async def worker_llm(messages):
        await C.FakeLLM.asleep()
        return text(C.worker_answer(worker, C.find_task(last_user_prompt(messages))))

    return ScriptedModel(worker_llm, name=f'fake-{worker}')


async def supervisor_llm(messages):
    await C.FakeLLM.asleep()
    results = tool_results(messages)
    if not results:  # turn 1: delegate K subtasks in one response
        return [delegate(w, t, call_id=f'call_{i}') for i, (w, t) in enumerate(C.delegations(C.FakeLLM.k))]
    return text(C.final_answer(results))  # turn 2: answer from what arrived


def _lookup(query: str) -> str:
    """Look something up (a tool the scripted workers have but never call)."""
    return query


def build(features: set[str], *, name: str = 'bench', worker_tool: bool = False) -> object:
    """The team; `worker_tool`: each worker also has a tool (never called), as most real specialists do."""
    kwargs: dict[str, object] = {}
    if 'guardrails' in features:
        kwargs['guardrails'] = _default_guardrails()
    if 'ledger' in features:
        kwargs.update(_ledger_kwargs())
    if 'pydantic-ai-instrumentation' in features:
        kwargs['instrumentation'] = 'pydantic-ai'
    team = Team(
        Supervisor(
            model=ScriptedModel(supervisor_llm, name='fake-supervisor'),
            instructions='You are the supervisor. Split the task into subtasks and delegate them to the workers.',
        ),
        [
            Specialist(
                w,
                f'You are the {w} worker. Do the subtask you are given.',
                model=make_worker_model(w),
                tools=[_lookup] if worker_tool else [],
            )
            for w in C.WORKERS
        ],
        name=name,
        state_dir=STATE,
        durable='durability' in features,
        trace='tracing' in features,
        record='recording' in features,  # replay recordings and the audit log
        **kwargs,  # type: ignore[arg-type]
    )
    TEAM['team'] = team
    return team


def _default_guardrails() -> list[object]:
    """The guards a user gets from `proctor.guardrails.default_guardrails()` (PII, injection, size)."""
    try:
        from proctor.guardrails import default_guardrails  # type: ignore[attr-defined]
    except ImportError:
        return []
    return list(default_guardrails())


def _ledger_kwargs() -> dict[str, object]:
    try:
        from proctor.orchestrator import Ledger  # type: ignore[attr-defined]
    except ImportError:
        return {}
    return {'observers': [Ledger.observer_for_state_dir(STATE)]} if hasattr(Ledger, 'observer_for_state_dir') else {}


async def run_team() -> str:
    result = await TEAM['team'].run(C.USER_TASK)  # type: ignore[attr-defined]
    return result.output


def main() -> None:
    args = C.parse_args(
        extra=lambda p: p.add_argument('--features', default='all', help=f'all, none, or some of {FEATURES}')
    )
    features = _features(args.extra['features'])
    os.environ.setdefault('PROCTOR_STATE_DIR', STATE)
    res = C.main(
        framework='proctor',
        variant='features=' + (','.join(sorted(features)) or 'none'),
        packages=['proctor', 'pydantic-ai-slim', 'dbos', 'opentelemetry-sdk', 'SQLAlchemy'],
        import_stmt=IMPORT_STMT,
        build=lambda: build(features),
        run_team=run_team,
        is_async=True,
        args=args,
    )
    del res


if __name__ == '__main__':
    main()
