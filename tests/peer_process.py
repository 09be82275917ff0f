"""Running tests/rpc/peer.py as a one-shot process (importable: conftest modules are not,
since pytest may resolve ``import conftest`` to any of the suite's conftest files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PEER = Path(__file__).parent / "rpc" / "peer.py"


def run_peer(*args: str, timeout: float = 180) -> object:
    """Run a one-shot peer command in its own process and return its JSON output."""
    out = subprocess.run(
        [sys.executable, str(PEER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        env=os.environ.copy(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
