"""Resume beyond ``fedbox run`` with the push/pull app: ``fedbox simulate --root`` killed
with SIGKILL (its clients die with it) and started again, and an app on Flower's legacy
API, whose strategy calls the grid from several threads in no fixed order."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from chaos_run import AGG, FBRESUME, Deployment

from fedbox.fl.history import list_runs, read_run

FBLEGACY = Path(__file__).resolve().parents[1] / "fl" / "apps" / "fblegacy"
SIM_AGG = "aggregator@sim.fedbox"


def _simulate(root: Path, output: Path, pause: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OUTPUT_DIR": str(output), "FBRESUME_ROUND_PAUSE": pause}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedbox",
            "simulate",
            str(FBRESUME),
            "-n",
            "2",
            "--root",
            str(root),
            "--no-encrypt",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,
    )


def test_simulate_killed_then_started_again_resumes(tmp_path: Path) -> None:
    reference = _simulate(tmp_path / "ref", tmp_path / "ref-out", "0")
    out, _ = reference.communicate(timeout=240)
    assert reference.returncode == 0, out

    root, state = tmp_path / "fed", tmp_path / "fed-state" / SIM_AGG
    sim = _simulate(root, tmp_path / "out", "3")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = list_runs(state)
            if runs and any(
                r.round == "1" and r.replies == 4 for r in read_run(state, runs[0].name).rounds
            ):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("round 1 never completed")
        os.killpg(sim.pid, signal.SIGKILL)
        sim.wait()
    finally:
        if sim.poll() is None:
            os.killpg(sim.pid, signal.SIGKILL)
    (run,) = list_runs(state)
    assert run.status == "interrupted"

    again = _simulate(root, tmp_path / "out", "0")
    out, _ = again.communicate(timeout=240)
    assert again.returncode == 0, out
    assert f"resuming run {run.name}" in out, out
    (after,) = list_runs(state)
    assert (after.name, after.status, after.restarts) == (run.name, "finished", 1)
    np.testing.assert_array_equal(
        np.load(tmp_path / "out" / "final.npy"), np.load(tmp_path / "ref-out" / "final.npy")
    )


def test_a_legacy_app_resumes(tmp_path: Path) -> None:
    dep = Deployment(tmp_path, "num-server-rounds=4", app=FBLEGACY)
    try:
        dep.start_all()
        dep.wait_until(lambda h: any(r.round == "2" and r.replies >= 1 for r in h.rounds))
        dep.kill(AGG)
        dep.start(AGG)
        assert dep.finish() == 0, dep.logs(AGG)
        log = dep.logs(AGG)
        assert "resuming run" in log and "diverged" not in log, log
        history = dep.history()
        assert history is not None and history.summary.status == "finished"
        rounds = [r for r in history.rounds if r.round]
        assert len(rounds) == 4 and all(r.replies == 4 and not r.errors for r in rounds), rounds
    finally:
        dep.close()


def test_large_replies_are_replayed_from_their_response_files(tmp_path: Path) -> None:
    config = "size=400000"  # 1.6 MB per reply: recorded by reference, not copied
    reference = Deployment(tmp_path / "ref", config)
    try:
        reference.start_all()
        assert reference.finish() == 0, reference.logs(AGG)
    finally:
        reference.close()
    dep = Deployment(tmp_path / "run", config, env={"FBRESUME_ROUND_PAUSE": "3"})
    try:
        dep.start_all()
        dep.wait_until(lambda h: any(r.round == "1" and r.replies == 4 for r in h.rounds))
        dep.kill(AGG)
        dep.start(AGG)
        assert dep.finish() == 0, dep.logs(AGG)
        assert "resuming run" in dep.logs(AGG)
        np.testing.assert_array_equal(dep.final(), reference.final())
        history = dep.history()
        assert history is not None
        record = dep.state(AGG) / "runs" / f"{history.summary.name}.sqlite"
        with sqlite3.connect(record) as db:  # train replies by reference, evaluate ones inline
            stored = db.execute("SELECT data IS NULL, COUNT(*) FROM replies GROUP BY 1").fetchall()
        assert sorted(stored) == [(0, 6), (1, 6)]
    finally:
        dep.close()
