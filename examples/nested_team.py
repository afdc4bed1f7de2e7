"""A hierarchical team: specialists that lead sub-teams, with one approval two levels down.

    supervisor ─┬─ coding (lead) ─┬─ implementer   writes src/greet.py
                │                 └─ tester        writes tests/test_greet.py  ← needs an operator
                └─ research (lead) ─┬─ reader_docs
                                    └─ reader_code

A lead is a `Specialist` with `team=[...]`: it delegates to its members through `delegate_to_<member>`
tools, as the supervisor delegates to it, both members in one turn (in parallel). The policy says a
write outside `src/` needs the `operator` role, so the tester's write waits; only that branch pauses:
the implementer, the research lead and both readers finish meanwhile. The decision (here the
`proctor` CLI, in a second process) wakes exactly that branch. The run is durable: stop this script
while it waits, decide, then `proctor --state-dir DIR resume RUN` finishes it.

    python examples/nested_team.py --auto-approve   # a second process approves
    python examples/nested_team.py --auto-reject    # ... or rejects: the tester, then its lead, are told why
    python examples/nested_team.py                  # waits for you (it prints the command)

Then `proctor --state-dir DIR runs show RUN` (the delegation tree), `traces show RUN` (nested
`invoke_agent` spans), `usage --by specialist` (a member's spend under its path,
`supervisor>coding>tester`). Offline: scripted models, no network, no API key.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proctor import Specialist, Supervisor, Team
from proctor.guardrails import ApprovalPolicy, ApprovalQueue, ApprovalRule
from proctor.testing import ScriptedModel, delegate, last_user_prompt, text, tool_call, tool_results
from proctor.tools import read_file, write_file

HERE = Path(__file__).resolve()
GREET = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n'
TEST = 'from greet import greet\n\n\ndef test_greet():\n    assert greet("Ada") == "Hello, Ada!"\n'


def joined(prefix: str) -> Callable[[list[Any]], Any]:
    return lambda m: text(f'{prefix}: ' + '; '.join(tool_results(m)))


def lead_model(name: str, *members: str) -> ScriptedModel:
    """A lead's scripted model: one subtask to each member in one turn, then their results joined."""
    return ScriptedModel(
        [[delegate(m, f'{name}: your part ({m})', call_id=f'{name}-{m}') for m in members], joined(name)],
        name=f'{name}-model',
    )


def writer_model(name: str, path: str, content: str) -> ScriptedModel:
    return ScriptedModel(
        [[tool_call('write_file', {'path': path, 'content': content}, call_id=f'{name}-write')], joined(name)],
        name=f'{name}-model',
    )


def reader_model(name: str, finding: str) -> ScriptedModel:
    return ScriptedModel(lambda m: text(f'{name} on "{last_user_prompt(m)}": {finding}'), name=f'{name}-model')


def build_team() -> Team:
    """The team (also the factory `proctor resume` rebuilds it with, from $PROCTOR_STATE_DIR)."""
    state = Path(os.environ.get('PROCTOR_STATE_DIR', '.proctor'))
    workspace = state / 'workspace'
    (workspace / 'src').mkdir(parents=True, exist_ok=True)
    coding = Specialist(
        'coding',
        'Lead the change: split it between the implementer and the tester.',
        model=lead_model('coding', 'implementer', 'tester'),
        team=[
            Specialist(
                'implementer',
                'Write the code.',
                model=writer_model('implementer', 'src/greet.py', GREET),
                tools=[write_file],
            ),
            Specialist(
                'tester',
                'Write the tests.',
                model=writer_model('tester', 'tests/test_greet.py', TEST),
                tools=[write_file],
            ),
        ],
    )
    research = Specialist(
        'research',
        'Lead the research: one reader for the docs, one for the code.',
        model=lead_model('research', 'reader_docs', 'reader_code'),
        team=[
            Specialist(
                'reader_docs', 'Read the docs.', model=reader_model('reader_docs', 'no docs yet'), tools=[read_file]
            ),
            Specialist(
                'reader_code', 'Read the code.', model=reader_model('reader_code', 'an empty src/'), tools=[read_file]
            ),
        ],
    )
    policy = ApprovalPolicy(
        [
            ApprovalRule(
                tool='write_file',
                args={'path': '!src/*'},
                role='operator',
                reason='writes outside src/ need an operator',
            )
        ]
    )
    return Team(
        Supervisor(model=lead_model('supervisor', 'coding', 'research')),
        [coding, research],
        name='nested-team',
        workspace=workspace,
        guardrails=[policy],
        factory=f'{HERE}:build_team',
    )


def _store(state: Path):
    from proctor.state._store import StateStore

    return StateStore(state)


def decide_from_another_process(state: Path, verb: str) -> None:
    """Wait for the pending approval, then decide it with the `proctor` CLI in a subprocess."""
    queue = ApprovalQueue(_store(state))
    while not (pending := queue.list(status='pending')):
        time.sleep(0.1)
    a = pending[0]
    args = ['--note', 'auto-approved by the example'] if verb == 'approve' else ['--reason', 'tests land next sprint']
    env = {**os.environ, 'PROCTOR_OPERATOR': 'example-operator', 'PROCTOR_ROLES': 'operator'}
    out = subprocess.run(
        [sys.executable, '-m', 'proctor', '--state-dir', str(state), 'approvals', verb, a.approval_id, *args],
        env=env,
        capture_output=True,
        text=True,
    )
    print(f'[second process] {out.stdout.strip() or out.stderr.strip()}', flush=True)


def announce(state: Path, stop: threading.Event) -> None:
    """Print the pending approval, the command that decides it, and which branches already finished."""
    from proctor.orchestrator import RunRecords

    queue = ApprovalQueue(_store(state))
    while not stop.is_set():
        pending = queue.list(status='pending')
        if pending:
            a = pending[0]
            print(f'\nwaiting for approval {a.approval_id}: {a.agent_path} wants {a.tool}({a.args["path"]!r})')
            print(f'  approve: PROCTOR_ROLES=operator proctor --state-dir {state} approvals approve {a.approval_id}')
            print(
                f'  reject:  PROCTOR_ROLES=operator proctor --state-dir {state} approvals reject {a.approval_id} --reason "why"'
            )
            on_path = {a.agent_path.rsplit('>', n)[0] for n in range(a.agent_path.count('>'))}  # it and its leads
            deadline = time.monotonic() + 10
            while True:  # the other branches go on meanwhile: show them once they are done
                status = {d.agent_path: d.status for d in RunRecords(queue.store).get(a.run_id).delegations}
                others = [s for p, s in status.items() if p not in on_path]
                if len(others) >= 4 and 'running' not in others or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            print('  branches now: ' + ', '.join(f'{p} {s}' for p, s in sorted(status.items())))
            print(f'  (if this script stops: proctor --state-dir {state} resume {a.run_id})\n', flush=True)
            return
        stop.wait(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        '--state-dir', type=Path, default=None, help='default: $PROCTOR_STATE_DIR, else a new temporary folder'
    )
    group = ap.add_mutually_exclusive_group()
    group.add_argument('--auto-approve', action='store_true', help='approve from a second process')
    group.add_argument('--auto-reject', action='store_true', help='reject from a second process')
    args = ap.parse_args()
    env_state = os.environ.get('PROCTOR_STATE_DIR')
    state = (
        args.state_dir or (Path(env_state) if env_state else None) or Path(tempfile.mkdtemp(prefix='proctor-nested-'))
    ).resolve()
    os.environ['PROCTOR_STATE_DIR'] = str(state)
    team = build_team()
    stop = threading.Event()
    threading.Thread(target=announce, args=(state, stop), daemon=True).start()
    decider = None
    if args.auto_approve or args.auto_reject:
        verb = 'approve' if args.auto_approve else 'reject'
        decider = threading.Thread(target=decide_from_another_process, args=(state, verb), daemon=True)
        decider.start()
    try:
        result = team.run_sync('Add greet(name) with a test, and find out what the project does.', project='demo')
    finally:
        stop.set()
        from proctor.state import _dbos as _engine

        _engine.shutdown()
    if decider is not None:
        decider.join(timeout=60)
    print(f'run {result.run_id}: {result.status}')
    print(result.output)
    print('delegations:')
    for d in sorted(result.delegations, key=lambda d: d.agent_path):
        depth = d.agent_path.count('>')
        print(f'  {"  " * (depth - 1)}{d.agent_path.rpartition(">")[2]} [{d.status}] on {d.model_id}')
    ws = state / 'workspace'
    for rel in ('src/greet.py', 'tests/test_greet.py'):
        print(f'  {rel}: {"written" if (ws / rel).exists() else "not written"}')
    for a in ApprovalQueue(team.store).list(run_id=result.run_id):
        print(f'  approval {a.approval_id} ({a.agent_path}): {a.status} by {a.decider} ({a.decider_role}): {a.reason}')
    print(f'see: proctor --state-dir {state} runs show {result.run_id}   (and: usage --by specialist)')


if __name__ == '__main__':
    main()
