"""Large bodies both ways with memory bounded (issue 17, point 3): 200 MB down and up
between an owner process and a caller process, encrypted on a folder, each side's peak
RSS growing by a few chunks at most (the 1 GB figures are in benchmarks/bridge.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from bridge_process import HERE, OwnerProcess
from conftest import APP, OWNER

SIZE = 200 << 20
BOUND = 32 << 20
"""Growth allowed on either side: the application's 1 MiB chunks, a queue of four, the
64 KiB reads and encryption segments; far below the body's size."""


def expected_digest(size: int) -> str:
    block = bytes(range(256)) * 4096
    digest = hashlib.sha256()
    for start in range(0, size, len(block)):
        digest.update(block[: min(len(block), size - start)])
    return digest.hexdigest()


def run_caller(root: Path, mode: str, size: int) -> dict:
    done = subprocess.run(
        [sys.executable, str(HERE / "bridge_process.py"), str(root), OWNER, APP, mode, str(size)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("mode", ["download", "upload"])
def test_a_large_body_passes_with_memory_bounded_on_both_sides(root: Path, mode: str) -> None:
    owner = OwnerProcess(str(root), OWNER, APP, "--asgi", "service:app")
    try:
        run_caller(root, mode, 1 << 20)  # the owner's first request: imports, keys
        owner_before = owner.peak_rss
        result = run_caller(root, mode, SIZE)
        owner_after = owner.peak_rss
    finally:
        assert owner.stop() == 0
    assert result["status"] == 200
    assert result["sha256"] == expected_digest(SIZE)
    assert result["rss_after"] - result["rss_before"] < BOUND, result
    assert owner_after - owner_before < BOUND, (owner_before, owner_after)
