"""A worker declared dead while it still runs (paused past `dead_after`) acts no side effect of the
run another worker took over: the tool journal's begin checks that this execution still owns the
run's DBOS workflow (`state._dbos.owner_fence`). Two real worker processes on Postgres; one is
stopped with SIGSTOP and continued with SIGCONT after the other took its run over."""

from __future__ import annotations

import signal

import pytest
from test_scale_out import Cluster, cluster, postgres, submit, wait_for  # noqa: F401 - fixtures

from proctor.state._heartbeats import Heartbeats
from proctor.state._queue import wait_for_run
from proctor.tools._journal import ToolJournal

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]


def _calls(c: Cluster, tag: str, agent: str) -> list[str]:
    return [pid for t, a, pid in c.lines('calls') if (t, a) == (tag, agent)]


def test_a_paused_worker_whose_run_was_taken_over_makes_no_side_effect(cluster, monkeypatch):  # noqa: F811
    gate, beat_gate = cluster.dir / 'research-gate', cluster.dir / 'beat-gate'
    cluster.env.update(SCALE_RESEARCH_GATE=str(gate), SCALE_BEAT_GATE=str(beat_gate))
    monkeypatch.setenv('SCALE_RESEARCH_GATE', str(gate))
    gate.touch()  # research waits here, after its model call, before the side effect it asks for
    a = cluster.start_worker('--concurrency', '2')
    (rid,) = submit(['fence-1'])
    wait_for(lambda: _calls(cluster, 'fence-1', 'research') == [str(a.pid)], what='worker A at research')
    # A does not learn it was declared dead until its heartbeat gets through again: held back from
    # now on (its last beat done), so after the pause A runs on for a while not knowing.
    a_beat = beat_gate.with_name(f'{beat_gate.name}.{a.pid}')
    a_beat.touch()
    wait_for(
        lambda: any(w.pid == a.pid and w.age_s > 1.0 for w in Heartbeats(cluster.store).list()),
        what="A's heartbeat to be held back",
    )
    b = cluster.start_worker('--concurrency', '2')
    a.send_signal(signal.SIGSTOP)  # a long pause: past dead_after, B takes the run over
    try:
        wait_for(
            lambda: _calls(cluster, 'fence-1', 'research') == [str(a.pid), str(b.pid)], what='worker B to take over'
        )
        mine = gate.with_name(f'{gate.name}.{b.pid}')
        mine.touch()  # B waits on; only A goes on
        gate.unlink()
    finally:
        a.send_signal(signal.SIGCONT)
    # A answers (a live model: a new tool call id, so a new journal key) and tries its effect:
    # refused, since B owns the workflow now.
    log = cluster.dir / 'worker0.log'
    fenced = lambda: 'journal.fenced' in log.read_text(errors='replace')  # noqa: E731
    wait_for(lambda: fenced() or cluster.lines('effects'), what="A's effect to be refused (or to happen)")
    assert cluster.lines('effects') == [] and fenced()
    a_beat.unlink()  # then its heartbeat tells A it was declared dead, and it stops
    a.wait(timeout=120)
    assert 'worker was declared dead by its peers' in log.read_text(errors='replace')
    mine.unlink()
    rec = wait_for_run(cluster.store, rid, timeout=120)
    assert (rec.status, rec.output) == ('succeeded', 'done fence-1: found fence-1 | coded fence-1'), rec.error
    assert cluster.lines('effects') == [['fence-1', str(b.pid)]]  # exactly once, by the owner
    journal = ToolJournal(cluster.store).list(rid)
    assert [(j['tool'], j['status']) for j in journal] == [('record_fact', 'done')]
