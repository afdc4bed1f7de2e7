"""Approval checkpoints: a coding agent whose file write outside `src/` waits for an operator.

The policy says any `write_file` outside `src/` needs the `operator` role. The scripted coding agent
writes `src/greet.py` (no approval needed) and `CHANGELOG.md` (outside `src/`: it waits). The
research delegation beside it finishes meanwhile: only the waiting branch pauses. The script prints
the approval id and the command that decides it; run that command in another terminal:

    python examples/approval_flow.py                      # waits for you
    PROCTOR_ROLES=operator proctor --state-dir DIR approvals approve ID --note "ok"
    PROCTOR_ROLES=operator proctor --state-dir DIR approvals reject ID --reason "not now"

    python examples/approval_flow.py --auto-approve       # a second process approves (non-interactive)
    python examples/approval_flow.py --auto-reject        # ... or rejects: the agent is told why

The run is durable: stop this script while it waits, decide the approval, then
`proctor --state-dir DIR resume RUN` finishes it (the decision made meanwhile is honoured).
Offline: scripted models, no network, no API key.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from proctor import Supervisor, Team, coding, research
from proctor.guardrails import ApprovalPolicy, ApprovalQueue, ApprovalRule
from proctor.testing import ScriptedModel, delegate, text, tool_call, tool_results

HERE = Path(__file__).resolve()
GREET = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n'
CHANGELOG = '# Changelog\n\n- Add greet(name).\n'


def build_team() -> Team:
    """The team (also the factory `proctor resume` rebuilds it with, from $PROCTOR_STATE_DIR)."""
    state = Path(os.environ.get('PROCTOR_STATE_DIR', '.proctor'))
    workspace = state / 'workspace'
    (workspace / 'src').mkdir(parents=True, exist_ok=True)
    supervisor = ScriptedModel(
        [
            [
                delegate('coding', 'add greet(name) and note it in the changelog', call_id='d-coding'),
                delegate('research', 'what does the project do?', call_id='d-research'),
            ],
            lambda m: text('\n'.join(tool_results(m))),
        ]
    )
    coder = ScriptedModel(
        [
            [
                tool_call('write_file', {'path': 'src/greet.py', 'content': GREET}, call_id='w-src'),
                tool_call('write_file', {'path': 'CHANGELOG.md', 'content': CHANGELOG}, call_id='w-log'),
            ],
            lambda m: text('coding: ' + '; '.join(tool_results(m))),
        ]
    )
    reader = ScriptedModel([text('research: a tiny greeting library')])
    policy = ApprovalPolicy(
        [
            ApprovalRule(
                tool='write_file',
                args={'path': '!src/*'},
                role='operator',
                expires_after_s=3600,
                reason='writes outside src/ need an operator',
            ),
        ]
    )
    return Team(
        Supervisor(model=supervisor),
        [coding(coder), research(reader)],
        name='approval-flow',
        workspace=workspace,
        guardrails=[policy],
        factory=f'{HERE}:build_team',
    )


def decide_from_another_process(state: Path, verb: str) -> None:
    """Wait for the pending approval, then decide it with the `proctor` CLI in a subprocess."""
    queue = ApprovalQueue(_store(state))
    while not (pending := queue.list(status='pending')):
        time.sleep(0.1)
    a = pending[0]
    args = ['--note', 'auto-approved by the example'] if verb == 'approve' else ['--reason', 'the changelog is frozen']
    env = {**os.environ, 'PROCTOR_OPERATOR': 'example-operator', 'PROCTOR_ROLES': 'operator'}
    out = subprocess.run(
        [sys.executable, '-m', 'proctor', '--state-dir', str(state), 'approvals', verb, a.approval_id, *args],
        env=env,
        capture_output=True,
        text=True,
    )
    print(f'[second process] {out.stdout.strip() or out.stderr.strip()}')


def _store(state: Path):
    from proctor.state._store import StateStore

    return StateStore(state)


def announce(state: Path, stop: threading.Event) -> None:
    queue = ApprovalQueue(_store(state))
    while not stop.is_set():
        pending = queue.list(status='pending')
        if pending:
            a = pending[0]
            print(
                f'\nwaiting for approval {a.approval_id}: {a.agent_path} wants {a.tool}({a.args["path"]!r}) '
                f'- {a.reason_required}'
            )
            print(
                f'  approve: PROCTOR_ROLES=operator proctor --state-dir {state} approvals approve {a.approval_id} --note "ok"'
            )
            print(
                f'  reject:  PROCTOR_ROLES=operator proctor --state-dir {state} approvals reject {a.approval_id} --reason "why"'
            )
            from proctor.orchestrator import RunRecords

            status = {d.specialist: d.status for d in RunRecords(queue.store).get(a.run_id).delegations}
            print(
                f'  (delegations now: {status}; if this script stops, resume with: '
                f'proctor --state-dir {state} resume {a.run_id})\n',
                flush=True,
            )
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
        args.state_dir
        or (Path(env_state) if env_state else None)
        or Path(tempfile.mkdtemp(prefix='proctor-approval-flow-'))
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
        result = team.run_sync('Add greet(name) and update the changelog.', project='demo')
    finally:
        stop.set()
        from proctor.state import _dbos as _engine

        _engine.shutdown()
    if decider is not None:
        decider.join(timeout=60)
    ws = state / 'workspace'
    print(f'run {result.run_id}: {result.status}')
    print(result.output)
    for rel in ('src/greet.py', 'CHANGELOG.md'):
        print(f'  {rel}: {"written" if (ws / rel).exists() else "not written"}')
    for a in ApprovalQueue(team.store).list(run_id=result.run_id):
        print(f'  approval {a.approval_id}: {a.status} by {a.decider} ({a.decider_role}): {a.reason}')


if __name__ == '__main__':
    main()
