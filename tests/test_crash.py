"""SIGKILL a durable run at the worst moments and bring it back in a new process.

The team (`tests/crash_team.py`) does two side effects, `safe` then `risky` (which needs approval),
each appending its name to a counter file. Whatever the kill point, after restart and the operator's
decisions the run completes and each effect is in the counter exactly once; an effect cut off
mid-way becomes an in-doubt approval instead of being repeated.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from crash_harness import Harness as BaseHarness
from crash_harness import harness_fixture, wait_for
from crash_team import model_calls, recorded_calls

from proctor.state._records import RunRecords

pytestmark = pytest.mark.slow
TEAM = Path(__file__).with_name('crash_team.py')


class Harness(BaseHarness):
    def pause(self, name: str) -> None:
        (self.dir / name).touch()

    def release(self, name: str) -> None:
        (self.dir / name).unlink()

    def start(self, run_id: str) -> None:
        self.spawn(str(TEAM), run_id)

    def resume(self, run_id: str) -> None:
        self.spawn('-m', 'proctor', 'resume', run_id)

    def paused_at(self, name: str) -> None:
        wait_for(lambda: f'paused:{name}' in self.lines('trace'), what=f'the run to pause at {name}')

    def pending(self, kind: str) -> object:
        return wait_for(
            lambda: next((a for a in self.queue.list(status='pending') if a.kind == kind), None),
            what=f'a pending {kind} approval',
        )

    def decide(self, a: object, how: str, reason: str = 'ok') -> None:
        """Decide as an operator from this (another) process."""
        getattr(self.queue, how)(a.approval_id, decider='ops', roles=['operator'], reason=reason)  # type: ignore[attr-defined]

    def recorded(self) -> set[str]:
        """The model calls (`<agent path>:<turn>`) whose responses the run's recording holds now."""
        return recorded_calls(self.dir / 'state')

    def calls(self, since: int = 0) -> list[str]:
        """The model calls made (by any process) after the first `since` trace lines."""
        return model_calls(self.lines('trace')[since:])

    def run_status(self, run_id: str) -> str | None:
        from proctor.exceptions import UnknownRunError

        try:
            return RunRecords(self.queue.store).get(run_id, with_delegations=False).status
        except UnknownRunError:
            return None

    def delegation_status(self, run_id: str, specialist: str) -> str | None:
        rec = RunRecords(self.queue.store).get(run_id)
        return next((d.status for d in rec.delegations if d.specialist == specialist), None)


@pytest.fixture(autouse=True)
def _team_module_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(TEAM.parent))


@pytest.fixture
def h(tmp_path):
    yield from harness_fixture(Harness, tmp_path)


DONE = {'status': 'succeeded', 'output': 'done: coding: bumped safe | bumped risky | research: ok'}


def test_kill_while_waiting_for_approval_then_approve_from_another_process_and_resume(h):
    h.start('crash-wait')
    a = h.pending('tool')
    assert (a.tool, a.args, a.agent_path) == ('bump', {'name': 'risky'}, 'supervisor>coding')
    assert RunRecords(h.queue.store).get('crash-wait').status == 'waiting'
    h.kill()
    assert h.lines('counter') == ['safe']
    h.cli('approvals', 'approve', a.approval_id, '--note', 'approved while the run was down')  # decided while dead
    h.resume('crash-wait')
    assert h.finish() == DONE
    assert h.lines('counter') == ['safe', 'risky']  # each effect exactly once
    assert [x.approval_id for x in h.queue.list(run_id='crash-wait')] == [a.approval_id]  # the same approval, honoured


def test_kill_mid_effect_before_it_acted_becomes_in_doubt_and_an_approved_rerun_acts_once(h):
    h.pause('pause-effect-safe-before')
    h.start('crash-mid-1')
    h.paused_at('pause-effect-safe-before')
    h.kill()
    h.release('pause-effect-safe-before')
    assert h.lines('counter') == []
    h.resume('crash-mid-1')
    doubt = h.pending('in_doubt')  # never blindly repeated: an operator decides
    assert (doubt.tool, doubt.args) == ('bump', {'name': 'safe'}) and h.lines('counter') == []
    h.decide(doubt, 'approve', 'the counter shows it did not happen')
    h.decide(h.pending('tool'), 'approve')
    assert h.finish() == DONE
    assert h.lines('counter') == ['safe', 'risky']


def test_kill_mid_effect_after_it_acted_is_skipped_on_rejection_and_the_agent_is_told(h):
    h.pause('pause-effect-safe-after')
    h.start('crash-mid-2')
    h.paused_at('pause-effect-safe-after')
    h.kill()
    h.release('pause-effect-safe-after')
    assert h.lines('counter') == ['safe']
    h.resume('crash-mid-2')
    doubt = h.pending('in_doubt')
    h.decide(doubt, 'reject', 'it already happened')
    h.decide(h.pending('tool'), 'approve')
    result = h.finish()
    assert result['status'] == 'succeeded'
    assert 'The bump call was skipped' in result['output'] and 'it already happened' in result['output']
    assert h.lines('counter') == ['safe', 'risky']


def test_kill_between_steps_resumes_without_repeating_the_finished_effect(h):
    h.pause('pause-model-1')  # the coding model's second turn, after `safe` ran and was journaled
    h.start('crash-between')
    h.paused_at('pause-model-1')
    h.kill()
    h.release('pause-model-1')
    assert h.lines('counter') == ['safe']
    h.resume('crash-between')
    a = h.pending('tool')
    assert not [
        x for x in h.queue.list(run_id='crash-between') if x.kind == 'in_doubt'
    ]  # a finished effect is not in doubt
    h.decide(a, 'approve')
    assert h.finish() == DONE
    assert h.lines('counter') == ['safe', 'risky']


def test_resume_asks_no_finished_model_call_again_and_serves_finished_delegations(h):
    h.start('calls-wait')
    a = h.pending('tool')
    wait_for(lambda: h.delegation_status('calls-wait', 'research') == 'succeeded', what='research to finish')
    h.kill()
    done = h.recorded()
    # Every response the run had had is recorded, research's final answer included (it finished).
    assert done == {'supervisor:0', 'supervisor>coding:0', 'supervisor>coding:1', 'supervisor>research:0'}
    assert sorted(h.calls()) == sorted(done)
    seen = len(h.lines('trace'))
    h.decide(a, 'approve')
    h.resume('calls-wait')
    assert h.finish() == DONE
    # Only the calls that had not been answered: the finished research delegation was not run again.
    assert sorted(h.calls(seen)) == ['supervisor:1', 'supervisor>coding:2']
    assert h.lines('counter') == ['safe', 'risky']


def test_kill_right_after_the_delegations_finished_asks_only_the_unanswered_call_again(h):
    h.pause('pause-supervisor-1')  # the supervisor's final turn: both delegations have finished
    h.start('calls-after')
    h.decide(h.pending('tool'), 'approve')
    h.paused_at('pause-supervisor-1')
    wait_for(
        lambda: {h.delegation_status('calls-after', s) for s in ('coding', 'research')} == {'succeeded'},
        what='both delegations recorded as finished',
    )
    h.kill()
    h.release('pause-supervisor-1')
    # A delegation counts as finished only once its final answer is recorded.
    assert {'supervisor>coding:2', 'supervisor>research:0'} <= h.recorded()
    seen = len(h.lines('trace'))
    h.resume('calls-after')
    assert h.finish() == DONE
    assert h.calls(seen) == ['supervisor:1']
    assert h.lines('counter') == ['safe', 'risky']


def test_three_kills_in_one_run_still_act_once_and_repeat_no_finished_call(h):
    repeated: list[str] = []

    def kill_and_resume() -> None:
        h.kill()
        done, seen = h.recorded(), len(h.lines('trace'))
        h.resume('triple')
        h.segments.append((done, seen))

    h.segments = []  # type: ignore[attr-defined]
    h.pause('pause-model-1')  # 1: after `safe` acted, before coding asks for `risky`
    h.start('triple')
    h.paused_at('pause-model-1')
    kill_and_resume()
    h.release('pause-model-1')
    a = h.pending('tool')  # 2: while the approval waits (in the resumed process)
    kill_and_resume()
    h.pause('pause-supervisor-1')  # 3: after approving, at the supervisor's last turn
    h.decide(a, 'approve')
    wait_for(lambda: h.lines('trace').count('paused:pause-supervisor-1') == 1, what='the third pause')
    kill_and_resume()
    h.release('pause-supervisor-1')
    assert h.finish() == DONE
    assert h.lines('counter') == ['safe', 'risky']
    assert [x.approval_id for x in h.queue.list(run_id='triple')] == [a.approval_id]
    segments = h.segments  # type: ignore[attr-defined]
    for i, (done, seen) in enumerate(segments):
        end = segments[i + 1][1] if i + 1 < len(segments) else None
        repeated += [c for c in h.calls(seen)[: None if end is None else end - seen] if c in done]
    assert repeated == []
    # Every call was made; one made again was one a kill had cut off before its response was recorded.
    assert set(h.calls()) == {
        'supervisor:0',
        'supervisor:1',
        'supervisor>coding:0',
        'supervisor>coding:1',
        'supervisor>coding:2',
        'supervisor>research:0',
    }


def test_an_approved_rerun_cut_off_by_another_kill_asks_again_and_never_repeats_blindly(h):
    h.pause('pause-effect-safe-before')
    h.start('rerun-cut')
    h.paused_at('pause-effect-safe-before')
    h.kill()  # 1: `safe` began, did not act: in doubt
    h.resume('rerun-cut')
    first = h.pending('in_doubt')
    h.pause('pause-effect-safe-after')
    h.release('pause-effect-safe-before')
    h.decide(first, 'approve', 'the counter shows it did not happen')
    h.paused_at('pause-effect-safe-after')
    h.kill()  # 2: inside the approved re-run, after it acted
    h.release('pause-effect-safe-after')
    assert h.lines('counter') == ['safe']
    h.resume('rerun-cut')
    again = wait_for(
        lambda: next(
            (a for a in h.queue.list(status='pending') if a.kind == 'in_doubt' and a.approval_id != first.approval_id),
            None,
        ),
        what='a new in-doubt approval for the cut-off re-run',
    )
    assert (again.tool, again.args) == ('bump', {'name': 'safe'})
    h.decide(again, 'reject', 'it happened')
    h.decide(h.pending('tool'), 'approve')
    result = h.finish()
    assert result['status'] == 'succeeded' and 'it happened' in result['output']
    assert h.lines('counter') == ['safe', 'risky']


@pytest.mark.parametrize('point', ['imported', 'built', 'recorded', 'launched', 'started'])
def test_a_run_killed_at_start_up_is_never_lost(h, point):
    h.pause(f'pause-start-{point}')
    h.start(f'start-{point}')
    h.paused_at(f'pause-start-{point}')
    h.kill()
    h.release(f'pause-start-{point}')
    status = h.run_status(f'start-{point}')
    if point in ('imported', 'built'):
        # Before the run is recorded nothing of it exists: the caller, who holds the id, starts
        # it again with the same command.
        assert status is None and h.calls() == []
        h.start(f'start-{point}')
    else:
        assert status == 'running'  # recorded before anything else happened: resumable
        h.resume(f'start-{point}')
    h.decide(h.pending('tool'), 'approve')
    assert h.finish() == DONE
    assert h.lines('counter') == ['safe', 'risky'] and h.run_status(f'start-{point}') == 'succeeded'
    assert sorted(h.calls()) == sorted(
        ['supervisor:0', 'supervisor:1', 'supervisor>coding:0', 'supervisor>coding:1', 'supervisor>coding:2']
        + ['supervisor>research:0']
    )


def test_the_same_run_started_again_after_a_kill_continues_it(h):
    h.pause('pause-model-1')
    h.start('again')
    h.paused_at('pause-model-1')
    h.kill()
    h.release('pause-model-1')
    done, seen = h.recorded(), len(h.lines('trace'))
    h.start('again')  # the caller's own command again, not `proctor resume`: it resumes, never starts twice
    h.decide(h.pending('tool'), 'approve')
    assert h.finish() == DONE
    assert h.lines('counter') == ['safe', 'risky']
    assert not set(h.calls(seen)) & done
