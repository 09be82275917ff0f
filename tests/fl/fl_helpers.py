"""Helpers for the Flower tests: the example and test apps, and real fedbox processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples" / "digits"
ANALYTICS = REPO / "examples" / "analytics"
FBCOUNT = Path(__file__).resolve().parent / "apps" / "fbcount"


def fedbox_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fedbox", *args]


def run_fedbox(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``fedbox ARGS`` to completion; output captured as text."""
    return subprocess.run(
        fedbox_cmd(*args), capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )


class Proc:
    """A long-running ``fedbox`` process whose output goes to a file we can poll."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        self._file = open(log, "w")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen(
            fedbox_cmd(*args),
            stdout=self._file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ.copy(),
            start_new_session=True,
        )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Block until ``text`` shows up in the output (polling a log file is test-only)."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited {self.proc.returncode}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not seen within {timeout} s:\n{self.output}")
            time.sleep(0.05)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        self._file.close()
        return code

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._file.close()
