"""A deployment of real ``fedbox run`` processes (one aggregator, datasites) over a shared
folder, whose processes a test kills with SIGKILL and starts again.

Shared by the resume tests (kills at chosen moments), the chaos test (kills at random
moments) and ``benchmarks/chaos.py``. The app is ``fbresume`` (tests/fl/apps): it writes
the model it holds at the end to ``$OUTPUT_DIR/final.npy`` and its clients refuse a
message they have handled before, so "same final arrays, bit for bit" and "no message
handled twice" are both read from that file.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fedbox.fl.history import RunHistory, list_runs, read_run

FBRESUME = Path(__file__).resolve().parents[1] / "fl" / "apps" / "fbresume"
AGG = "agg@chaos.org"
SITES = ("site0@a.org", "site1@b.org")


class Deployment:
    """One run's processes; each role is started again by :meth:`start` after a kill."""

    def __init__(
        self,
        work: Path,
        run_config: str = "",
        *,
        sites: tuple[str, ...] = SITES,
        app: Path = FBRESUME,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.work = work
        self.root = work / "store"
        self.root.mkdir(parents=True, exist_ok=True)
        self.sites = sites
        self.app = app
        self.run_config = run_config
        self.extra = extra
        self.env = dict(env or {})
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: dict[str, int] = {}

    @property
    def output(self) -> Path:
        return self.work / "output"

    def state(self, email: str) -> Path:
        return self.work / "state" / email

    def command(self, email: str) -> list[str]:
        sites = [arg for s in self.sites for arg in ("--datasite", s)]
        cmd = [sys.executable, "-m", "fedbox", "run", str(self.app), "--email", email]
        cmd += ["--root", str(self.root), "--state-dir", str(self.state(email))]
        cmd += ["--aggregator", AGG, *sites, "--stop-wait", "2"]
        if email == AGG:
            cmd += ["--timeout", "120", "--join-timeout", "300", *self.extra]
            if self.run_config:
                cmd += ["--run-config", self.run_config]
        return cmd

    def start(self, email: str) -> None:
        n = self.starts.get(email, 0)
        self.starts[email] = n + 1
        env = {**os.environ, "OUTPUT_DIR": str(self.output), "PYTHONUNBUFFERED": "1", **self.env}
        log = open(self.work / f"{email}.{n}.log", "wb")  # noqa: SIM115 - the process owns it
        self.procs[email] = subprocess.Popen(
            self.command(email),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()

    def start_all(self) -> None:
        for email in (*self.sites, AGG):
            self.start(email)

    def kill(self, email: str) -> None:
        """SIGKILL, no goodbye; waits until the process is gone."""
        proc = self.procs[email]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def alive(self, email: str) -> bool:
        proc = self.procs.get(email)
        return proc is not None and proc.poll() is None

    def history(self) -> RunHistory | None:
        runs = list_runs(self.state(AGG))
        return read_run(self.state(AGG), runs[0].name) if runs else None

    def wait_until(self, condition: Callable[[RunHistory], bool], timeout: float = 120) -> None:
        """Poll the aggregator's run record (as the dashboard would) until ``condition``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.history()
            if history is not None and condition(history):
                return
            if not self.alive(AGG):
                raise AssertionError(f"the aggregator exited:\n{self.logs(AGG)}")
            time.sleep(0.02)
        raise AssertionError(f"condition not met within {timeout} s:\n{self.history()}")

    def finish(self, timeout: float = 240) -> int:
        """Wait for the aggregator to end, then for its datasites, which end on its stop
        (one started again after it answered the stop waits for a next run: killed after
        ``grace`` seconds); the aggregator's exit code."""
        code = self.procs[AGG].wait(timeout=timeout)
        grace = time.monotonic() + 10
        for email in self.sites:
            proc = self.procs.get(email)
            if proc is not None:
                try:
                    proc.wait(timeout=max(0.0, grace - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.kill(email)
        return code

    def close(self) -> None:
        for email in list(self.procs):
            self.kill(email)

    def logs(self, email: str) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.work.glob(f"{email}.*.log"))
        )

    def final(self) -> np.ndarray:
        return np.load(self.output / "final.npy")


def finished(history: RunHistory) -> bool:
    return history.summary.status == "finished"


def chaos_run(work: Path, rng: random.Random, kills: int, run_config: str = "") -> Deployment:
    """One run with ``kills`` SIGKILLs of random participants at random moments, each
    started again after a random pause; returns the deployment once its run finished
    (or its aggregator ended otherwise: the caller judges)."""
    dep = Deployment(work, run_config)
    dep.start_all()
    victims = (AGG, *dep.sites)
    for _ in range(kills):
        time.sleep(rng.uniform(0.2, 2.5))
        history = dep.history()
        if (history is not None and finished(history)) or not dep.alive(AGG):
            break
        victim = rng.choice(victims)
        dep.kill(victim)
        time.sleep(rng.uniform(0.0, 1.0))
        dep.start(victim)
    dep.finish()
    return dep
