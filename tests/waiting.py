"""Waiting on a condition with a timeout, never a fixed sleep (the tests' rule)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def wait_for(path: Path, timeout: float = 30) -> None:
    """Wait until a file shows up at ``path`` (another process writes it)."""
    wait_until(path.exists, f"{path} to appear", timeout)
