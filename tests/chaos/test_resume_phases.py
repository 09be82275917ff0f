"""Crash-resume of ``fedbox run``: the aggregator killed with SIGKILL in each phase of a
run and started again with the same command ends with the same model, bit for bit, as a
run nobody killed; its datasites keep running and no message is handled twice.

Kill moments are chosen by reading the aggregator's run record from the test, as the
dashboard reads it (:mod:`fedbox.fl.history`), while slow answers hold a phase open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from chaos_run import AGG, Deployment, finished

from fedbox.fl.history import RunHistory, list_runs
from fedbox.fl.record import connect_reader, record_path


@pytest.fixture
def deployment(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    dep = Deployment(tmp_path, env=getattr(request, "param", {}))
    yield dep
    dep.close()


def _round(history: RunHistory, label: str) -> tuple[int, int, int]:
    """(sent, answered, pending) of round ``label`` so far."""
    for r in history.rounds:
        if r.round == label:
            return r.sent, r.replies + r.errors + r.timeouts, r.pending
    return 0, 0, 0


def _kill_and_resume(dep: Deployment, when: Callable[[RunHistory], bool]) -> str:
    dep.wait_until(when)
    dep.kill(AGG)
    dep.start(AGG)
    assert dep.finish() == 0, dep.logs(AGG)
    return dep.logs(AGG)


def test_killed_before_the_first_push(deployment: Deployment, reference: np.ndarray) -> None:
    deployment.start(AGG)  # no datasite yet: it waits for them to join
    deployment.wait_until(lambda h: h.summary.status == "running")
    deployment.kill(AGG)
    for site in deployment.sites:
        deployment.start(site)
    deployment.start(AGG)
    assert deployment.finish() == 0, deployment.logs(AGG)
    assert "resuming run" in deployment.logs(AGG)
    np.testing.assert_array_equal(deployment.final(), reference)


@pytest.mark.parametrize("deployment", [{"FBRESUME_TRAIN_PAUSE": "3"}], indirect=True)
def test_killed_between_push_and_pull(deployment: Deployment, reference: np.ndarray) -> None:
    deployment.start_all()
    log = _kill_and_resume(deployment, lambda h: _round(h, "1") == (2, 0, 2))
    np.testing.assert_array_equal(deployment.final(), reference)
    assert "resuming run" in log
    history = deployment.history()
    assert history is not None and finished(history) and history.summary.restarts == 1
    # the replies to the two train messages sent before the kill were picked up, not re-sent
    assert [(r.sent, r.replies) for r in history.rounds] == [(4, 4)] * 3


def _kept_replies(dep: Deployment) -> int:
    """Replies the aggregator's record holds so far, whether or not their exchange is in."""
    runs = list_runs(dep.state(AGG))
    if not runs:
        return 0
    conn = connect_reader(record_path(dep.state(AGG), runs[0].name))
    try:
        return int(conn.execute("SELECT count(*) FROM replies").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize(
    "deployment", [{"FBRESUME_EVALUATE_PAUSE": "4", "FBRESUME_SLOW_PARTITION": "1"}], indirect=True
)
def test_killed_with_part_of_a_rounds_replies_kept(
    deployment: Deployment, reference: np.ndarray
) -> None:
    """A reply is kept in the record as soon as it is taken, while the round waits for the
    others (issue 20: not all at the round's end); a kill then leaves a kept reply of an
    unfinished round, which the run started again takes anew from the store."""
    deployment.start_all()
    # round 1: both train replies, and one of the two evaluate replies (send_and_receive)
    deployment.wait_until(lambda h: _kept_replies(deployment) == 3, timeout=60)
    history = deployment.history()
    assert history is not None and _round(history, "1") == (4, 2, 2)
    log = _kill_and_resume(deployment, lambda h: True)
    assert "resuming run" in log
    np.testing.assert_array_equal(deployment.final(), reference)
    history = deployment.history()
    assert history is not None
    assert [(r.sent, r.replies) for r in history.rounds] == [(4, 4)] * 3


@pytest.mark.parametrize("deployment", [{"FBRESUME_ROUND_PAUSE": "3"}], indirect=True)
def test_killed_between_rounds(deployment: Deployment, reference: np.ndarray) -> None:
    deployment.start_all()
    _kill_and_resume(
        deployment, lambda h: _round(h, "1") == (4, 4, 0) and _round(h, "2") == (0, 0, 0)
    )
    np.testing.assert_array_equal(deployment.final(), reference)


@pytest.mark.parametrize("deployment", [{"FBRESUME_EVALUATE_PAUSE": "3"}], indirect=True)
def test_killed_during_evaluate(deployment: Deployment, reference: np.ndarray) -> None:
    deployment.start_all()
    _kill_and_resume(deployment, lambda h: _round(h, "2") == (4, 2, 2))
    np.testing.assert_array_equal(deployment.final(), reference)
    history = deployment.history()
    assert history is not None
    assert [(r.sent, r.replies, r.errors) for r in history.rounds] == [(4, 4, 0)] * 3


def test_a_non_deterministic_app_stops_where_it_diverged(tmp_path: Path) -> None:
    dep = Deployment(tmp_path, "unseeded=true", env={"FBRESUME_ROUND_PAUSE": "3"})
    try:
        dep.start_all()
        dep.wait_until(lambda h: _round(h, "1") == (4, 4, 0))
        dep.kill(AGG)
        dep.start(AGG)
        assert dep.finish() == 1
        log = " ".join(dep.logs(AGG).split())
        assert (
            "the ServerApp diverged from the record of run" in log
            and "at exchange 2 (push of round 1): it asked for the same messages with other content"
            in log
        ), log
        history = dep.history()
        assert history is not None and history.summary.status == "failed"
        assert "Divergence" in (history.summary.error or "")
        assert _round(history, "1") == (4, 4, 0)  # the record is kept as it was
    finally:
        dep.close()


def test_an_app_that_ends_early_on_replay_stops_with_the_divergence(tmp_path: Path) -> None:
    dep = Deployment(tmp_path, env={"FBRESUME_ROUND_PAUSE": "3"})
    try:
        dep.start_all()
        dep.wait_until(lambda h: _round(h, "2") == (4, 4, 0))
        dep.kill(AGG)
        dep.env["FBRESUME_LAST_ROUND"] = "1"  # it now decides from its environment
        dep.start(AGG)
        assert dep.finish() == 1
        log = " ".join(dep.logs(AGG).split())
        assert "(push of round 2): it asked for nothing more" in log, log
        history = dep.history()
        assert history is not None and history.summary.status == "failed"
    finally:
        dep.close()
