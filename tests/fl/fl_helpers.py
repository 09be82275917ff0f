"""Helpers for the Flower tests: the example and test apps, and real fedbox processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from cli_process import run_cli

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples" / "digits"
ANALYTICS = REPO / "examples" / "analytics"
FBCOUNT = Path(__file__).resolve().parent / "apps" / "fbcount"
FBLEGACY = Path(__file__).resolve().parent / "apps" / "fblegacy"
# A federation of one aggregator and two datasites, as ``fedbox bootstrap`` takes it.
FEDERATION_ARGS = (
    "--aggregator",
    "ds@uni.org",
    "--datasite",
    "do1@hosp.org",
    "--datasite",
    "do2@lab.org",
)


def fedbox_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fedbox", *args]


def run_fedbox(
    *args: str, timeout: float = 120, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``fedbox ARGS`` to completion; output captured as text."""
    return run_cli(*args, timeout=timeout, env=env)


class Proc:
    """A long-running ``fedbox`` process; a reader thread collects its output so tests
    can wait for a line without sleeping."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            fedbox_cmd(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ.copy(),
            start_new_session=True,
            text=True,
            errors="replace",
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log, "w") as copy:
            for line in self.proc.stdout:
                copy.write(line)
                with self._changed:
                    self._lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Block until ``text`` shows up in the output, the process ends, or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while text not in "".join(self._lines):
                remaining = deadline - time.monotonic()
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"exited {self.proc.returncode}:\n{self.output}")
                if remaining <= 0:
                    raise AssertionError(f"{text!r} not seen within {timeout} s:\n{self.output}")
                self._changed.wait(remaining)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
