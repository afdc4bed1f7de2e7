"""A feature team on the embedded SmolLM2-135M: supervisor → research → coding → review, offline.

This is what `make demo` runs. The sample project in `examples/workspace/` (copied to the state
directory, so the shipped files stay pristine) has `greet(name)` and a failing test for a
`farewell(name)` that does not exist yet. The team reads the project, writes the function, runs the
tests and reviews the change, on a 135M-parameter model running in this process: no network, no
API key.

A model this small reasons poorly, so the team leaves it no way to get lost, and still lets it
write every piece of text itself:

- each agent follows a fixed plan of tool calls (`follow_plan`: a per-step `tool_choice`), then answers;
- every tool call is generated under a JSON-schema grammar: the file to read is an enum of real
  files, the review verdict an enum, strings and lists are bounded, subtasks must read as sentences;
- the coding specialist writes the new function as plain code (what a tiny model does best); it
  must parse, be new and pass the tests, or the file is restored and the model tries again, told
  why (sampling instead of greedy decoding, so it does not repeat itself);
- the review verdict must agree with the test run (else a retry), outputs are short (`max_tokens`),
  so a run takes well under a minute of CPU on 2 cores.

Run:     python examples/feature_team.py [--state-dir DIR] [--task TEXT]
Resume:  proctor --state-dir DIR resume RUN   (the team is rebuilt with `build_team`)
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

from pydantic_ai import ModelRetry, RunContext, TextOutput, Tool, ToolOutput
from pydantic_ai.messages import ModelRequest, ModelResponse, RetryFeedbackPart, ToolCallPart, ToolReturnPart
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import FunctionToolset

from proctor import Review, Specialist, Supervisor, Team
from proctor.exceptions import StateDirError
from proctor.orchestrator import RunDeps, RunObserver
from proctor.tools import read_file, run_tests, workspace_of, write_file
from proctor.tools._journal import side_effect_step  # the journal that makes side effects exactly-once

MODEL = 'local:smollm2'
HERE = Path(__file__).resolve().parent
SAMPLE = HERE / 'workspace'
TARGET = 'greeter.py'  # the module the coding specialist extends
TASK = 'Add a function farewell(name) to greeter.py that returns "Goodbye, <name>!". The test is in test_greeter.py.'


# ------------------------------------------------------------------ constraints for a tiny model


def follow_plan(*steps: str, **settings: Any) -> Callable[[RunContext[RunDeps]], dict[str, Any]]:
    """Per-step model settings: make the calls in `steps`, in order (a name twice: two calls), then answer.

    The answer is text, or the output tool for an agent with a structured output type. Only calls
    that succeeded count, so a refused call is tried again.
    """

    def per_step(ctx: RunContext[RunDeps]) -> dict[str, Any]:
        done = [
            p.tool_name
            for m in ctx.messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart) and p.outcome == 'success'
        ]
        todo = list(steps)
        for name in done:
            if name in todo:
                todo.remove(name)
        # A retry after feedback samples instead of decoding greedily, or it would repeat the rejected reply.
        retries = sum(
            isinstance(p, RetryFeedbackPart) or (isinstance(p, ToolReturnPart) and p.outcome == 'retried')
            for m in ctx.messages
            if isinstance(m, ModelRequest)
            for p in m.parts
        )
        sampling = {'temperature': 0.7, 'seed': 7 + retries} if retries else {}
        return {**settings, **sampling, 'tool_choice': [todo[0]] if todo else 'none'}

    return per_step


def _paths_read(ctx: RunContext[RunDeps]) -> set[str]:
    return {
        str(p.args_as_dict().get('path'))
        for m in ctx.messages
        if isinstance(m, ModelResponse)
        for p in m.parts
        if isinstance(p, ToolCallPart) and p.tool_name == 'read_file'
    }


def path_enum(*patterns: str) -> Callable[[RunContext[RunDeps], ToolDefinition], Any]:
    """A tool `prepare`: `path` becomes an enum of the workspace files matching `patterns`, not read yet."""

    async def prepare(ctx: RunContext[RunDeps], tool_def: ToolDefinition) -> ToolDefinition:
        # The grammar then only admits files that exist: the model picks one, it cannot invent a path.
        ws, seen = workspace_of(ctx), _paths_read(ctx)
        every = ws.list_files()
        files = [f for f in every if any(fnmatch(f, p) for p in patterns or ('*',)) and f not in seen]
        schema = dict(tool_def.parameters_json_schema)
        schema['properties'] = {**schema['properties'], 'path': {'type': 'string', 'enum': files or every}}
        return replace(tool_def, parameters_json_schema=schema)

    return prepare


async def _no_arguments(ctx: RunContext[RunDeps], tool_def: ToolDefinition) -> ToolDefinition:
    return replace(tool_def, parameters_json_schema={'type': 'object', 'properties': {}, 'additionalProperties': False})


def _code_of(text: str) -> str:
    fenced = re.search(r'```(?:python|py)?\s*\n(.*?)(?:```|$)', text, re.S)
    return (fenced.group(1) if fenced else text).strip()


def new_functions(code: str, existing: str) -> tuple[str | None, str | None]:
    """The functions of `code` that `existing` lacks, as source; or None and what is wrong with `code`."""
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return None, f'the code does not parse ({e.msg}, line {e.lineno})'
    known = {n.name for n in ast.parse(existing).body if isinstance(n, ast.FunctionDef)}
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    new = [n for n in defs if n.name not in known]  # a tiny model often repeats the existing ones first
    if not new:
        have = ', '.join(n.name for n in defs)
        return (
            None,
            f'{have} already exists in {TARGET}; write the new function' if defs else 'there is no def in the reply',
        )
    return '\n\n\n'.join(ast.get_source_segment(code, n) or '' for n in new), None


def _failures(outcome: str) -> str:
    lines = [ln for ln in outcome.splitlines() if ln.startswith(('FAILED', 'ERROR', 'E '))]
    return '\n'.join(lines[:4])[:400] or outcome.strip()[-400:]


async def apply_function(ctx: RunContext[RunDeps], text: str) -> str:
    """The coding specialist's output: its reply is the new function. It is appended to TARGET and kept
    if the tests pass; otherwise the file is restored and the model tries again, told why (its last
    try is kept either way, for the reviewer to judge)."""

    async def read_target() -> str:
        return workspace_of(ctx).read_text(TARGET)

    # A journaled read: a resumed run sees the file as this attempt first did, not as it left it.
    current = await side_effect_step('feature_team.read_target', read_target)
    code, problem = new_functions(_code_of(text), current)
    last_try = ctx.retry >= ctx.max_retries
    if code is None:
        if not last_try:
            raise ModelRetry(f'{problem}. Reply with only the Python code of the new function.')
        return f'no change made: {problem}'
    await write_file(ctx, TARGET, current.rstrip() + '\n\n\n' + code + '\n')
    outcome = await run_tests(ctx)
    if '[exit code 0]' not in outcome and not last_try:
        await write_file(ctx, TARGET, current)  # the next try starts from the same file
        raise ModelRetry(
            f'With that function the tests fail:\n{_failures(outcome)}\nReply with only the corrected function.'
        )
    summary = outcome.strip().splitlines()[-1] if outcome.strip() else 'no test output'
    return f'Appended to {TARGET}:\n{code}\nTests: {summary}'


def _tests_passed(ctx: RunContext[RunDeps]) -> bool | None:
    """Whether the last `run_tests` of this agent run passed (exit code 0); None if it ran none."""
    outcomes = [
        str(p.content)
        for m in ctx.messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart) and p.tool_name == 'run_tests'
    ]
    return None if not outcomes else '[exit code 0]' in outcomes[-1]


def submit_review(
    ctx: RunContext[RunDeps], verdict: Literal['approve', 'request_changes'], comments: list[str]
) -> Review:
    """Submit the review: the verdict and short comments."""
    passed = _tests_passed(ctx)
    if passed is not None and (verdict == 'approve') != passed and ctx.retry < ctx.max_retries:
        expected = 'approve' if passed else 'request_changes'
        raise ModelRetry(f'The tests {"passed" if passed else "failed"}, so the verdict must be {expected}.')
    return Review(verdict=verdict, comments=comments[:10])


class FileInInstructions(FunctionToolset[RunDeps]):
    """No tools: the current text of one workspace file, in the agent's instructions at every step.

    A tiny model writes in the style of code it is shown in its system prompt, while code in a tool
    result is code it tends to repeat.
    """

    def __init__(self, path: str) -> None:
        super().__init__([], id=f'file-in-instructions-{path}')
        self.path = path

    async def get_instructions(self, ctx: RunContext[RunDeps]) -> str:
        return f'{self.path} currently contains:\n```python\n{workspace_of(ctx).read_text(self.path)}```'


# ------------------------------------------------------------------ the team


def resolve_state_dir(state_dir: str | Path | None) -> Path:
    """proctor's rule: the argument, else $PROCTOR_STATE_DIR, else `.proctor` in the working directory."""
    return Path(state_dir or os.environ.get('PROCTOR_STATE_DIR') or '.proctor').expanduser().absolute()


def build_team(
    *,
    state_dir: str | Path | None = None,
    workspace: str | Path | None = None,
    observers: Sequence[RunObserver] = (),
    model: Any = MODEL,
) -> Team:
    """The demo team; with no arguments (how `proctor resume` rebuilds it) it uses the default workspace."""
    state = resolve_state_dir(state_dir)
    ws = Path(workspace) if workspace is not None else state / 'workspaces' / 'feature_team'
    if not ws.exists():
        shutil.copytree(SAMPLE, ws, ignore=shutil.ignore_patterns('__pycache__', '.pytest_cache'))
    supervisor = Supervisor(
        instructions=(
            'You lead a team of specialists working on a Python project. Delegate one subtask at a time: '
            'research, then coding, then review. When they are done, tell the user in two sentences what '
            'was changed and what the review said.'
        ),
        model=model,
        model_settings=follow_plan(  # type: ignore[arg-type]  # pydantic-ai takes a per-step callable
            'delegate_to_research',
            'delegate_to_coding',
            'delegate_to_review',
            max_tokens=64,
            local_max_string_chars=100,
            local_prose_strings=True,
            local_prose_text=True,
        ),
    )
    research = Specialist(
        'research',
        'You are the research specialist. You read a file of the project for the team. Reply with one sentence '
        'about the code in that file.',
        model=model,
        tools=(Tool(read_file, prepare=path_enum()),),
        description='reads one file of the project and reports what it says',
        model_settings=follow_plan('read_file', max_tokens=48, local_prose_text=True),  # type: ignore[arg-type]
    )
    coding = Specialist(
        'coding',
        'You are the coding specialist. Whatever the subtask says, implement the feature request of README.md. '
        'Reply with only the code of the new function.',
        model=model,
        tools=(Tool(read_file, prepare=path_enum('*.md')),),
        toolsets=(FileInInstructions(TARGET),),
        output_type=TextOutput(apply_function),
        description=f'writes one new function into {TARGET} and runs the tests',
        retries=3,
        model_settings=follow_plan('read_file', max_tokens=100),  # type: ignore[arg-type]
    )
    review = Specialist(
        'review',
        'You are the review specialist. Run the tests. Approve if they all pass, otherwise request changes. '
        'Add one short comment.',
        model=model,
        tools=(Tool(run_tests, prepare=_no_arguments),),
        output_type=ToolOutput(submit_review, name='submit_review'),
        description='runs the tests and says approve or request_changes',
        model_settings=follow_plan(  # type: ignore[arg-type]
            'run_tests', max_tokens=80, local_max_string_chars=100, local_max_array_items=1, local_prose_strings=True
        ),
    )
    return Team(
        supervisor,
        [research, coding, review],
        name='feature_team',
        workspace=ws,
        state_dir=state,
        observers=observers,
        factory=f'{Path(__file__).resolve()}:build_team',
    )


# ------------------------------------------------------------------ the script


def reset_workspace(state_dir: str | Path | None = None) -> Path:
    """A fresh copy of the sample project for a new run (a resumed run keeps its half-done copy)."""
    ws = resolve_state_dir(state_dir) / 'workspaces' / 'feature_team'
    try:
        shutil.rmtree(ws, ignore_errors=True)
        ws.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(SAMPLE, ws, ignore=shutil.ignore_patterns('__pycache__', '.pytest_cache'))
    except OSError as e:
        raise StateDirError(f'cannot copy the sample project to {ws}: {e.strerror}', path=str(ws)) from e
    return ws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--state-dir', help='state directory (default: $PROCTOR_STATE_DIR or ./.proctor)')
    parser.add_argument('--task', default=TASK, help='what to ask the team')
    args = parser.parse_args(argv)

    from rich.console import Console

    from proctor.exceptions import ProctorError
    from proctor.orchestrator import build_model
    from proctor.tracing import LiveTree

    console = Console()

    def say(text: str = '', *, style: str | None = None) -> None:
        console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    try:
        local = build_model(MODEL)
        load_s = local.load()  # type: ignore[attr-defined]
        ws = reset_workspace(args.state_dir)
        started = time.perf_counter()
        with LiveTree(console) as tree:
            team = build_team(state_dir=args.state_dir, workspace=ws, observers=[tree])
            result = team.run_sync(args.task, project='demo', data_class='internal')
        wall = time.perf_counter() - started
    except ProctorError as e:
        say(f'error: {e}')
        return 1
    except Exception as e:
        say(f'error: the run failed: {type(e).__name__}: {e}'.splitlines()[0])
        return 1
    stats = local.stats()  # type: ignore[attr-defined]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say()
    say('Final answer', style='bold')
    say(str(result.output))
    say()
    for d in result.delegations:
        say(f'{d.specialist} ({d.status}): {str(d.output)[:300]}')
    say()
    say(f'run id      {result.run_id}')
    say(f'state       {result.state_dir}   (proctor --state-dir {result.state_dir} runs show {result.run_id[:12]})')
    say(f'workspace   {ws}')
    say(
        f'wall time   {wall:.1f}s   tokens {result.usage.input_tokens}+{result.usage.output_tokens}   '
        f'{stats["tokens_per_second"]} tokens/s ({stats["requests"]} generations, {stats["generate_s"]:.1f}s)   '
        f'model load {load_s:.2f}s   peak RSS {rss_mb:.0f} MB'
    )
    return 0 if result.status == 'succeeded' else 1


if __name__ == '__main__':
    sys.exit(main())
