"""A nested team (`tests/nested_crash_team.py`: supervisor → coding → {implementer, tester}, research →
{reader_a, reader_b}) in real processes: SIGKILL while a grandchild is mid-run, then `proctor resume`
finishes it without repeating a finished model call or side effect in any branch; an approval two
levels down pauses only its branch, and a decision from another process (the CLI) wakes exactly it.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from crash_harness import Harness as BaseHarness
from crash_harness import harness_fixture, wait_for

from proctor.state._records import RunRecords
from proctor.tracing import Recording

pytestmark = pytest.mark.slow
TEAM = Path(__file__).with_name('nested_crash_team.py')
AGENTS = ('supervisor', 'coding', 'research', 'implementer', 'tester', 'reader_a', 'reader_b')


class Harness(BaseHarness):
    def model_calls(self) -> Counter[str]:
        return Counter(x for x in self.lines('trace') if x.startswith('model:'))

    def pending(self) -> object:
        return wait_for(lambda: next(iter(self.queue.list(status='pending')), None), what='a pending approval')

    def statuses(self, run_id: str) -> dict[str, str]:
        return {d.agent_path: d.status for d in RunRecords(self.store).get(run_id).delegations}


@pytest.fixture
def h(tmp_path):
    yield from harness_fixture(Harness, tmp_path)


SIBLINGS_DONE = {
    'supervisor>coding>implementer': 'succeeded',
    'supervisor>research': 'succeeded',
    'supervisor>research>reader_a': 'succeeded',
    'supervisor>research>reader_b': 'succeeded',
}


def test_kill_9_mid_grandchild_then_resume_repeats_no_finished_model_call_or_effect(h):
    (h.dir / 'pause-model-tester-1').touch()  # the tester's second turn: after `tested` ran and was journaled
    h.spawn(str(TEAM), 'nested-kill')
    wait_for(lambda: 'paused:pause-model-tester-1' in h.lines('trace'), what='the tester to pause')
    # Every sibling branch at every level finishes while the grandchild is mid-run; wait for its
    # recording to reach the store (the background flush), as a crash at any later moment would find it.
    wait_for(lambda: SIBLINGS_DONE.items() <= h.statuses('nested-kill').items(), what='the siblings to finish')
    finished = {f'model:{a}:{t}' for a, t in [('implementer', 0), ('implementer', 1), ('reader_a', 0), ('reader_b', 0)]}
    finished |= {'model:research:0', 'model:research:1', 'model:coding:0', 'model:tester:0', 'model:supervisor:0'}
    assert set(h.model_calls()) == finished
    wait_for(
        lambda: (
            len([s for s in Recording.from_store(h.store, 'nested-kill').steps if s.kind == 'model']) == len(finished)
        ),
        what='every finished model call recorded',
    )
    h.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    h.proc.communicate()  # type: ignore[union-attr]
    (h.dir / 'pause-model-tester-1').unlink()
    assert sorted(h.lines('counter')) == ['implemented', 'tested']

    h.spawn('-m', 'proctor', 'resume', 'nested-kill')
    a = h.pending()
    assert (a.agent_path, a.tool, a.args) == ('supervisor>coding>tester', 'bump', {'name': 'risky'})  # type: ignore[attr-defined]
    h.cli('approvals', 'approve', a.approval_id, '--note', 'ok')  # type: ignore[attr-defined]
    result = h.finish()
    assert result == {
        'status': 'succeeded',
        'output': 'done: coding: implementer: bumped implemented | tester: bumped tested | bumped risky | '
        'research: a: ok | b: ok',
    }
    assert sorted(h.lines('counter')) == ['implemented', 'risky', 'tested']  # each effect exactly once
    calls = h.model_calls()
    assert {k: n for k, n in calls.items() if n != 1} == {}  # no finished model call asked again, in any branch
    assert set(calls) == finished | {'model:tester:1', 'model:tester:2', 'model:coding:1', 'model:supervisor:1'}
    assert set(h.statuses('nested-kill').values()) == {'succeeded'}


def test_deep_approval_pauses_only_its_branch_and_a_rejection_from_another_process_reaches_the_lead(h):
    h.spawn(str(TEAM), 'nested-approval')
    a = h.pending()
    assert (a.agent_path, a.args) == ('supervisor>coding>tester', {'name': 'risky'})  # type: ignore[attr-defined]
    # Siblings at every level went on and finished; only the waiting branch (tester and its lead) waits.
    by = wait_for(lambda: SIBLINGS_DONE.items() <= (s := h.statuses('nested-approval')).items() and s)
    assert (by['supervisor>coding>tester'], by['supervisor>coding']) == ('waiting', 'running')
    assert RunRecords(h.store).get('nested-approval').status == 'waiting'
    assert h.queue.get(a.approval_id).pending  # type: ignore[attr-defined]
    h.cli('approvals', 'reject', a.approval_id, '--reason', 'not on a friday')  # type: ignore[attr-defined]
    result = h.finish()
    assert result['status'] == 'succeeded'
    coding = next(
        d for d in RunRecords(h.store).get('nested-approval').delegations if d.agent_path == 'supervisor>coding'
    )
    assert 'not on a friday' in coding.output and 'denied' in coding.output  # the reason reached the lead
    assert sorted(h.lines('counter')) == ['implemented', 'tested']  # the rejected effect never happened


@pytest.mark.parametrize('verb', ['approve', 'reject'])
def test_the_nested_team_example_runs_offline(tmp_path, verb):
    example = Path(__file__).resolve().parents[1] / 'examples' / 'nested_team.py'
    out = subprocess.run(
        [sys.executable, str(example), '--state-dir', str(tmp_path / 'state'), f'--auto-{verb}'],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'waiting for approval apr-' in out.stdout and 'supervisor>coding>tester wants write_file' in out.stdout
    # only the waiting branch paused: every other branch at every level had finished
    assert 'supervisor>research>reader_docs succeeded' in out.stdout
    assert 'supervisor>coding>implementer succeeded' in out.stdout
    assert 'supervisor>coding>tester waiting' in out.stdout
    assert re.search(r'^run [0-9a-f]+: succeeded$', out.stdout, re.M)
    assert 'src/greet.py: written' in out.stdout
    if verb == 'approve':
        assert 'tests/test_greet.py: written' in out.stdout
    else:
        assert 'tests/test_greet.py: not written' in out.stdout
        assert (
            'tester: The tool call was denied by example-operator' in out.stdout
            and 'tests land next sprint' in out.stdout
        )
