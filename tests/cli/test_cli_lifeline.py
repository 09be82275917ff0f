"""No orphans: `fedbox simulate` killed with SIGKILL takes its client processes with it.

Issue 11, point 18. The clients would otherwise wait forever for an aggregator that is
gone. Real processes and a real ``kill -9``; the second test checks the mechanism that
works without Linux's parent-death signal (a pipe the parent holds) on its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FBCOUNT = REPO / "tests" / "fl" / "apps" / "fbcount"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids to SIGKILL after the test, so a failure does not leave processes behind."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_clients_die_when_simulate_is_killed(tmp_path: Path, leftovers: list[int]) -> None:
    root = tmp_path / "fed"
    slow = ["--run-config", "num-server-rounds=2 round-pause=600"]
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedbox",
            "simulate",
            str(FBCOUNT),
            "-n",
            "2",
            "--root",
            str(root),
            *slow,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=os.environ.copy(),
        start_new_session=True,
    )
    leftovers.append(sim.pid)
    logs = [tmp_path / "fed-state" / f"client-{i}@sim.fedbox" / "client.log" for i in (0, 1)]

    def clients_serving() -> bool:
        return all(log.exists() and "serving" in log.read_text() for log in logs)

    _wait_until(clients_serving, 90, "both clients serving")
    clients = _children(sim.pid)
    leftovers.extend(clients)
    assert len(clients) == 2 and all(_alive(pid) for pid in clients)
    sim.kill()  # SIGKILL: no finally, no reaping, no stop message
    sim.wait()
    _wait_until(lambda: not any(_alive(pid) for pid in clients), 30, "clients gone")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_the_pipe_alone_ends_a_child_whose_parent_was_killed(leftovers: list[int]) -> None:
    child = "from fedbox.cli.lifeline import die_with_parent; import sys, threading; " + (
        "die_with_parent(int(sys.argv[1]), kernel_signal=False); print('up', flush=True); "
        "threading.Event().wait()"
    )
    parent = textwrap.dedent(
        f"""
        import subprocess, sys, threading
        from fedbox.cli.lifeline import Lifeline
        line = Lifeline()
        fd = str(line.child_fd)
        proc = subprocess.Popen([sys.executable, "-c", {child!r}, fd], pass_fds=(line.child_fd,))
        print(proc.pid, flush=True)
        threading.Event().wait()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    leftovers.append(proc.pid)
    assert proc.stdout is not None
    child_pid = int(proc.stdout.readline())
    leftovers.append(child_pid)
    assert proc.stdout.readline().strip() == "up"
    assert _alive(child_pid)
    proc.kill()
    proc.wait()
    _wait_until(lambda: not _alive(child_pid), 30, "the child gone")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_drops_its_copy_of_the_parents_end(leftovers: list[int]) -> None:
    """A child forked without exec (as ``simulate`` starts its clients) gets a copy of the
    write end too; unless it closes it, the pipe stays open when the parent dies."""
    parent = textwrap.dedent(
        """
        import os, threading
        from fedbox.cli.lifeline import Lifeline, die_with_parent
        line = Lifeline()
        pid = os.fork()
        if pid == 0:
            line.forked()
            die_with_parent(line.child_fd, kernel_signal=False)
            threading.Event().wait()
        print(pid, flush=True)
        threading.Event().wait()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    leftovers.append(proc.pid)
    assert proc.stdout is not None
    child_pid = int(proc.stdout.readline())
    leftovers.append(child_pid)
    proc.kill()
    proc.wait()
    _wait_until(lambda: not _alive(child_pid), 30, "the child gone")
