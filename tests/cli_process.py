"""Running the ``fedbox`` command as a real process, wide enough that tables don't wrap."""

from __future__ import annotations

import os
import subprocess
import sys


def fedbox_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedbox", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "300"},
    )
