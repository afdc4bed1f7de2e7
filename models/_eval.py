"""`Evaluator`: run an evaluation suite on candidate models of the registry, and record what it shows.

```python
router = ModelRouter.from_file('proctor.toml')
report = await Evaluator(router).run(load_suite('evals/triage.toml'), models=['mini', 'sonnet'], repeat=3)
print(report.rows())   # per model: pass rate, mean score, p50/p95 latency, tokens, cost per case
```

Each case runs on each candidate model the case's data class allows under the routing policy
(approval, and the policy rules for that class: regions, allow-lists, ...); a model never sees a
case it is not approved for. Judge checks call a registry model too, approved under the same policy
for the case's class, or the suite is refused before anything runs. Every call (the model's and the
judge's) is reserved against the budgets and written to the ledger like a team's (team `eval`,
specialist = the suite's subject, run id = the evaluation's), and traced as `eval.run` /
`eval.case` spans when a tracer provider is given. Results go to the state store with each model's
version (`proctor.models._eval_store`); the run is `complete` only once every case is recorded.

Not pydantic-evals: it is not a dependency of this checkout. The runner is small (a task group,
a capacity limiter); its checks mirror pydantic-evals' evaluators (`EqualsExpected`, `Contains`,
`IsInstance`, `LLMJudge`) so a suite can move to it when it is installed.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, Field
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.usage import RequestUsage

from .._log import get_logger
from ..core._deps import RunDeps
from ..core._events import ModelCall
from ..exceptions import BudgetExceeded, ConfigError, UnknownModelError, UserError
from ..state._store import StateStore
from ._budget import BudgetGuard
from ._eval_store import EvalRecords, EvalResult, EvalRunRecord
from ._eval_suite import Check, CheckResult, EvalCase, EvalSuite
from ._ledger import LedgerObserver

if TYPE_CHECKING:
    from ._router import ModelRouter

__all__ = ('Evaluator', 'EvalReport', 'CaseRun', 'JudgeVerdict', 'EVAL_TEAM', 'JUDGE_SPECIALIST', 'report_rows')

log = get_logger('proctor.eval')

EVAL_TEAM = 'eval'
JUDGE_SPECIALIST = 'eval-judge'
JUDGE_INSTRUCTIONS = (
    'You grade an answer against a rubric. Reply with JSON only: '
    '{"passed": true|false, "score": <0 to 1>, "reason": "<one sentence>"}.'
)


class JudgeVerdict(BaseModel):
    """What an LLM judge answers (parsed from its JSON)."""

    passed: bool
    score: float = Field(ge=0, le=1)
    reason: str = ''


@dataclass
class CaseRun:
    """One case on one model (one repeat): the output and every check's verdict."""

    model_id: str
    case: str
    repeat: int
    data_class: str
    passed: bool
    score: float
    latency_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    judge_cost_usd: float = 0.0
    output: str | None = None
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None

    def row(self, run_id: str) -> dict[str, Any]:
        return {
            'run_id': run_id,
            'model_id': self.model_id,
            'case_name': self.case,
            'repeat': self.repeat,
            'data_class': self.data_class,
            'passed': self.passed,
            'score': self.score,
            'latency_ms': self.latency_ms,
            'input_tokens': self.input_tokens,
            'output_tokens': self.output_tokens,
            'cost_usd': self.cost_usd,
            'judge_cost_usd': self.judge_cost_usd,
            'output': None if self.output is None else self.output[:4000],
            'checks': json.dumps([c.to_json() for c in self.checks]),
            'error': self.error,
            'created_at': time.time(),
        }


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in [0, 1]); 0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[max(0, math.ceil(p * len(s)) - 1)]


def summarise(
    run_id: str, suite: str, model_id: str, version: str | None, runs: list[CaseRun], skipped: int
) -> EvalResult:
    n = len(runs)
    lat = [r.latency_ms for r in runs]
    cost = sum(r.cost_usd for r in runs)
    passed = sum(r.passed for r in runs)
    return EvalResult(
        run_id=run_id,
        model_id=model_id,
        suite=suite,
        model_version=version,
        cases=n,
        skipped=skipped,
        passed=passed,
        pass_rate=passed / n if n else 0.0,
        mean_score=statistics.fmean(r.score for r in runs) if n else 0.0,
        p50_ms=percentile(lat, 0.5),
        p95_ms=percentile(lat, 0.95),
        input_tokens=sum(r.input_tokens for r in runs),
        output_tokens=sum(r.output_tokens for r in runs),
        cost_usd=cost,
        cost_per_case=cost / n if n else 0.0,
        judge_cost_usd=sum(r.judge_cost_usd for r in runs),
        errors=sum(r.error is not None for r in runs),
        created_at=time.time(),
    )


REPORT_COLUMNS = (
    'model',
    'version',
    'pass rate',
    'mean score',
    'p50 ms',
    'p95 ms',
    'tokens',
    '$/case',
    'cases',
    'skipped',
)


def report_rows(results: Sequence[EvalResult]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(columns, rows) of the per-model table, cheapest per case first."""
    rows = [
        (
            r.model_id,
            r.model_version or '-',
            f'{r.pass_rate:.0%}',
            f'{r.mean_score:.2f}',
            f'{r.p50_ms:.1f}',
            f'{r.p95_ms:.1f}',
            str(r.tokens),
            f'{r.cost_per_case:.6f}',
            str(r.cases),
            str(r.skipped),
        )
        for r in sorted(results, key=lambda r: (r.cost_per_case, r.model_id))
    ]
    return REPORT_COLUMNS, rows


@dataclass
class EvalReport:
    """What one evaluation run found (also in the state store under `run_id`)."""

    run_id: str
    suite: str
    subject: str
    status: str
    results: list[EvalResult]
    cases: list[CaseRun]
    skipped: dict[str, list[str]]  # model -> cases it is not approved for
    started_at: float
    finished_at: float
    error: str | None = None

    def result(self, model_id: str) -> EvalResult:
        for r in self.results:
            if r.model_id == model_id:
                return r
        raise KeyError(model_id)

    def to_json(self) -> dict[str, Any]:
        return {
            'run_id': self.run_id,
            'suite': self.suite,
            'subject': self.subject,
            'status': self.status,
            'started_at': self.started_at,
            'finished_at': self.finished_at,
            'error': self.error,
            'results': [r.to_json() for r in self.results],
            'skipped': self.skipped,
        }


class Evaluator:
    """Runs suites on the models of `router`'s registry under its policy and budgets; records to `store`.

    `project` is the ledger's and the budgets' project for evaluation spend (default `eval`).
    `tracer_provider` (optional) gets an `eval.run` span and an `eval.case` span per case;
    `on_trace(trace_id, run_id)` is told the run's trace id as it starts (the CLI routes it to the
    local trace store with it).
    """

    def __init__(
        self,
        router: ModelRouter,
        store: StateStore | None = None,
        *,
        project: str = 'eval',
        tracer_provider: Any = None,
        on_trace: Callable[[int, str], None] | None = None,
    ) -> None:
        self.router = router
        self.registry = router.registry
        self.store = store or StateStore()
        self.project = project
        self.records = EvalRecords(self.store)
        self.ledger = LedgerObserver(registry=self.registry, store=self.store)
        self.guard = BudgetGuard(router.budgets, registry=self.registry, store=self.store) if router.budgets else None
        self.tracer_provider = tracer_provider
        self.on_trace = on_trace

    # ------------------------------------------------------------------ planning (no side effects)

    def _refusal(self, model_id: str, data_class: str, specialist: str) -> str | None:
        return self.router.refusal(
            model_id, data_class=data_class, specialist=specialist, project=self.project, team=EVAL_TEAM
        )

    def judge_for(self, check: Check, case: EvalCase, suite: EvalSuite) -> str:
        """The first judge of `check` approved for the case's data class, or a `ConfigError` saying why not."""
        why: dict[str, str] = {}
        for j in check.judges:
            if j not in self.registry:
                raise UnknownModelError(
                    j, known=self.registry.ids(), hint=f'the judge of {suite.path or suite.name}: {check.key}'
                )
            reason = self._refusal(j, case.data_class, JUDGE_SPECIALIST)
            if reason is None:
                return j
            why[j] = reason
        raise ConfigError(
            f'judge {", ".join(why)} may not see case {case.name!r} of data class {case.data_class!r}: '
            + '; '.join(f'{m}: {r}' for m, r in why.items()),
            file=suite.path,
            key=f'{check.key}.judge',
        )

    def plan(
        self, suite: EvalSuite, models: Sequence[str] | None = None
    ) -> tuple[dict[str, list[EvalCase]], dict[str, list[str]]]:
        """(model -> the cases it runs, model -> the cases it may not see); every bad input raises here."""
        explicit = models is not None
        ids = list(dict.fromkeys(models)) if models is not None else self.registry.ids()
        if not ids:
            raise UserError('no models to evaluate: name them with --models a,b,c')
        for m in ids:
            if m not in self.registry:
                raise UnknownModelError(
                    m, known=self.registry.ids(), hint=f'not in the registry of {self.router.source or "the router"}'
                )
        for case in suite.cases:
            for check in case.checks:
                if check.kind == 'judge':
                    self.judge_for(check, case, suite)
        runs: dict[str, list[EvalCase]] = {}
        skipped: dict[str, list[str]] = {}
        for m in ids:
            ok, no = [], []
            for case in suite.cases:
                (ok if self._refusal(m, case.data_class, suite.subject) is None else no).append(case)
            if not ok:
                why = self._refusal(m, suite.cases[0].data_class, suite.subject)
                if explicit:
                    raise UserError(
                        f'model {m!r} may see none of the cases of suite {suite.name!r} '
                        f'(data classes {", ".join(suite.data_classes)}): {why}'
                    )
                continue
            runs[m] = ok
            skipped[m] = [c.name for c in no]
        if not runs:
            raise UserError(f'no model of the registry is approved for the data classes of suite {suite.name!r}')
        return runs, skipped

    # ------------------------------------------------------------------ running

    def run_sync(self, suite: EvalSuite, **kwargs: Any) -> EvalReport:
        return anyio.run(lambda: self.run(suite, **kwargs))

    async def run(
        self,
        suite: EvalSuite,
        *,
        models: Sequence[str] | None = None,
        concurrency: int = 4,
        repeat: int = 1,
        progress: Callable[[int, int, CaseRun], None] | None = None,
        run_id: str | None = None,
    ) -> EvalReport:
        """Run every case of `suite` on every candidate `repeat` times, `concurrency` at a time."""
        if concurrency < 1:
            raise UserError(f'concurrency must be at least 1, not {concurrency}')
        if repeat < 1:
            raise UserError(f'repeat must be at least 1, not {repeat}')
        plan, skipped = self.plan(suite, models)
        run_id = run_id or f'ev-{time.strftime("%Y%m%d-%H%M%S")}-{uuid.uuid4().hex[:6]}'
        started = time.time()
        total = sum(len(cs) for cs in plan.values()) * repeat
        record = EvalRunRecord(
            run_id=run_id,
            suite=suite.name,
            subject=suite.subject,
            suite_path=suite.path,
            suite_hash=suite.digest,
            status='running',
            models=list(plan),
            repeat=repeat,
            cases=len(suite.cases),
            project=self.project,
            started_at=started,
            finished_at=None,
            error=None,
        )
        await self.store.call(self.records.start, record)
        done: list[CaseRun] = []
        limiter = anyio.CapacityLimiter(concurrency)
        tracer = self._tracer()
        error: str | None = None
        failure: BaseException | None = None
        with tracer.start_as_current_span(
            'eval.run',
            attributes={
                'proctor.eval.run_id': run_id,
                'proctor.eval.suite': suite.name,
                'proctor.eval.subject': suite.subject,
                'proctor.eval.models': ','.join(plan),
                'proctor.eval.repeat': repeat,
            },
        ) as root:
            if self.on_trace is not None and root.is_recording():
                self.on_trace(root.get_span_context().trace_id, run_id)

            async def one(model_id: str, case: EvalCase, rep: int) -> None:
                async with limiter:
                    cr = await self._case(tracer, run_id, suite, model_id, case, rep)
                done.append(cr)
                if progress is not None:
                    progress(len(done), total, cr)

            try:
                async with anyio.create_task_group() as tg:
                    for rep in range(repeat):
                        for model_id, cases in plan.items():
                            for case in cases:
                                tg.start_soon(one, model_id, case, rep)
            except BaseException as e:  # a budget refused a call, Ctrl-C, a bug: the run is failed
                failure = _unwrap(e)
                error = f'{type(failure).__name__}: {failure}'
            results = None
            if error is None:
                results = [
                    summarise(
                        run_id,
                        suite.name,
                        m,
                        self.registry.get(m).version,
                        [c for c in done if c.model_id == m],
                        len(skipped[m]) * repeat,
                    )
                    for m in plan
                ]
                root.set_attributes({f'proctor.eval.pass_rate.{r.model_id}': r.pass_rate for r in results})
            rows = [c.row(run_id) for c in sorted(done, key=lambda c: (c.model_id, c.case, c.repeat))]
            with anyio.CancelScope(shield=True):
                await self.store.call(self.records.finish, run_id, rows, results, error=error)
        self._audit(run_id, suite, results, error)
        self.router.evaluations_changed(suite.name)
        if failure is not None:
            raise failure
        assert results is not None
        return EvalReport(
            run_id=run_id,
            suite=suite.name,
            subject=suite.subject,
            status='complete',
            results=results,
            cases=done,
            skipped={m: s for m, s in skipped.items() if s},
            started_at=started,
            finished_at=time.time(),
        )

    def _tracer(self) -> Any:
        from opentelemetry import trace

        provider = self.tracer_provider or trace.get_tracer_provider()
        return provider.get_tracer('proctor.eval')

    def _audit(self, run_id: str, suite: EvalSuite, results: list[EvalResult] | None, error: str | None) -> None:
        from ..state._audit import append_audit

        record = {
            'eval_run_id': run_id,
            'suite': suite.name,
            'subject': suite.subject,
            'suite_hash': suite.digest,
            'status': 'complete' if error is None else 'failed',
            'error': error,
            'results': {
                r.model_id: {'version': r.model_version, 'pass_rate': r.pass_rate, 'cost_per_case': r.cost_per_case}
                for r in results or []
            },
        }
        append_audit(self.store, 'eval_run', record, run_id=run_id, key=f'eval:{run_id}')

    def _deps(self, run_id: str, suite: EvalSuite, model_id: str, case: EvalCase, specialist: str) -> RunDeps:
        return RunDeps(
            run_id=run_id,
            team=EVAL_TEAM,
            project=self.project,
            data_class=case.data_class,
            agent_path=f'eval:{suite.name}>{specialist}',
            specialist=specialist,
            model_id=model_id,
        )

    async def _call(
        self, deps: RunDeps, key: str, model_id: str, instructions: str | None, prompt: str, output_type: Any = str
    ) -> tuple[Any, int, int, float, float]:
        """One agent run on `model_id`, reserved against the budgets and written to the ledger:
        (output, input tokens, output tokens, cost, latency ms)."""
        from pydantic_ai import Agent

        model = self.registry.model(model_id)
        call = ModelCall(
            deps=deps,
            key=key,
            model_id=model_id,
            model_name=model.model_name,
            system=model.system,
            messages=[ModelRequest(parts=[UserPromptPart(prompt)], instructions=instructions)],
            model_settings=None,
        )
        if self.guard is not None:
            await self.guard.before_model_call(call)
        agent = Agent(model, instructions=instructions, output_type=output_type)
        t0 = time.perf_counter()
        try:
            result = await agent.run(prompt)
        except BaseException as e:
            if self.guard is not None:
                await self.guard.on_model_error(call, e)
            raise
        ms = (time.perf_counter() - t0) * 1000
        u = result.usage
        response = ModelResponse(
            parts=[TextPart(str(result.output))],
            usage=RequestUsage(input_tokens=u.input_tokens, output_tokens=u.output_tokens),
            model_name=model.model_name,
        )
        await self.ledger.after_model_call(call, response)
        if self.guard is not None:
            await self.guard.after_model_call(call, response)
        cost = call.extra['proctor.cost']
        return result.output, cost.input_tokens, cost.output_tokens, cost.cost_usd, ms

    async def _case(
        self, tracer: Any, run_id: str, suite: EvalSuite, model_id: str, case: EvalCase, rep: int
    ) -> CaseRun:
        key = f'{run_id}#{model_id}#{case.name}#{rep}'
        with tracer.start_as_current_span(
            'eval.case',
            attributes={
                'proctor.eval.case': case.name,
                'proctor.model_id': model_id,
                'proctor.data_class': case.data_class,
                'proctor.eval.repeat': rep,
            },
        ) as span:
            deps = self._deps(run_id, suite, model_id, case, suite.subject)
            t0 = time.perf_counter()
            try:
                output, tin, tout, cost, ms = await self._call(deps, key, model_id, suite.instructions, case.input)
            except (BudgetExceeded, ConfigError):
                raise
            except Exception as e:
                ms = (time.perf_counter() - t0) * 1000
                err = f'{type(e).__name__}: {e}'[:1000]
                span.set_attribute('proctor.eval.error', err)
                return CaseRun(model_id, case.name, rep, case.data_class, False, 0.0, ms, error=err)
            output = str(output)
            results: list[CheckResult] = []
            judge_cost = 0.0
            for i, check in enumerate(case.checks):
                if check.kind == 'judge':
                    verdict, jc = await self._judge(run_id, suite, model_id, case, check, output, f'{key}#judge:{i}')
                    results.append(verdict)
                    judge_cost += jc
                else:
                    results.append(check.run(output, case))
            passed = all(r.passed for r in results)
            score = statistics.fmean(r.score for r in results)
            span.set_attributes({'proctor.eval.passed': passed, 'proctor.eval.score': score, 'proctor.cost_usd': cost})
            return CaseRun(
                model_id,
                case.name,
                rep,
                case.data_class,
                passed,
                score,
                ms,
                tin,
                tout,
                cost,
                judge_cost,
                output,
                results,
            )

    async def _judge(
        self, run_id: str, suite: EvalSuite, model_id: str, case: EvalCase, check: Check, output: str, key: str
    ) -> tuple[CheckResult, float]:
        from pydantic_ai import PromptedOutput

        judge = self.judge_for(check, case, suite)
        prompt = (
            f'Rubric:\n{check.options["rubric"]}\n\nTask given to the model:\n{case.input}\n\n'
            f'Answer to grade:\n{output}'
        )
        deps = self._deps(run_id, suite, judge, case, JUDGE_SPECIALIST)
        label = f'judge:{judge}'
        try:
            verdict, _, _, cost, _ = await self._call(
                deps, key, judge, JUDGE_INSTRUCTIONS, prompt, output_type=PromptedOutput(JudgeVerdict)
            )
        except (BudgetExceeded, ConfigError):
            raise
        except Exception as e:
            return CheckResult(label, False, 0.0, f'the judge failed: {type(e).__name__}: {e}'[:300]), 0.0
        min_score = float(check.options.get('min_score', 0.5))
        ok = bool(verdict.passed) and verdict.score >= min_score
        return CheckResult(label, ok, float(verdict.score), verdict.reason), cost


def _unwrap(e: BaseException) -> BaseException:
    """The first real error of a task group's exception group."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e
