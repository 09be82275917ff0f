"""Running the ``fedbox`` command as a real process, wide enough that tables don't wrap."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def run_cli(
    *args: str, timeout: float = 60, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``fedbox ARGS`` to completion in ``env`` (this process's by default); output
    captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "fedbox", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ if env is None else env),
    )


def fedbox_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=timeout, env={**os.environ, "COLUMNS": "300"})
