"""Federated learning over a hub: ``fedbox simulate --hub`` as a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hub_process import BACKENDS

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
MARKER = b"train-loss"
"""A metric name every client reply carries: in any body the hub stores in the clear."""


def _simulate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedbox", "simulate", str(DIGITS), "--clients", "3", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def hub_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _blobs(data: Path, flags: tuple[str, ...], env: dict[str, str]) -> list[bytes]:
    """Every blob the hub stored: in DATA/blobs, or under its ``--blobs`` URL."""
    if not flags:
        return [p.read_bytes() for p in (data / "blobs").rglob("*") if p.is_file()]
    import fsspec

    url = flags[flags.index("--blobs") + 1]
    fs, root = fsspec.core.url_to_fs(url, **json.loads(env["FEDBOX_STORAGE_OPTIONS"])["s3"])
    return [fs.cat_file(path) for path in fs.find(root)]


def _hub_port(out: str) -> int:
    found = re.search(r"store\s+hub://127\.0\.0\.1:(\d+)", out)
    assert found, out
    return int(found.group(1))


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def _until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)  # polling a condition, not waiting out an event
    return False


def test_digits_over_a_hub_reaches_the_usual_accuracy_encrypted(
    tmp_path: Path, fedbox_home: Path, backend_flags: tuple[tuple[str, ...], dict[str, str]]
) -> None:
    """On each backend: ``fedbox hub serve`` takes ``--db``/``--blobs`` from the
    environment, which ``simulate --hub`` passes on to the hub it starts."""
    flags, env = backend_flags
    if flags:
        env = {**env, "FEDBOX_HUB_DB": flags[1], "FEDBOX_HUB_BLOBS": flags[3]}
    data = tmp_path / "hub"
    done = _simulate("--hub", "--root", str(data), env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    accuracy = re.search(r"final test accuracy ([0-9.]+)", out)
    assert accuracy and float(accuracy.group(1)) >= 0.9, out
    assert "encryption off" not in out
    for i in range(3):
        assert re.search(rf"client-{i}@sim\.fedbox\s+│ yes\s+│ 10/10 ", out), out
    blobs = _blobs(data, flags, env)
    assert len(blobs) > 30  # every message went through the hub
    assert not any(MARKER in blob for blob in blobs)
    assert _refuses(_hub_port(out))  # the hub ended with the run


def test_a_url_root_with_hub_is_refused(fedbox_home: Path) -> None:
    done = _simulate("--hub", "--root", "s3://bucket/fed")
    assert done.returncode == 2
    assert "--hub starts its own hub" in done.stderr


def test_the_hub_dies_with_a_killed_simulate(tmp_path: Path, fedbox_home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedbox", "simulate", str(DIGITS), "--clients", "2", "--hub",
         "--root", str(tmp_path / "hub")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
    )  # fmt: skip
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:
        seen += line
        if "hub://" in line:
            break
    port = _hub_port(seen)
    assert not _refuses(port)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert _until(lambda: _refuses(port), timeout=30), "the hub outlived simulate"


def test_a_temporary_hub_leaves_nothing_behind(tmp_path: Path, fedbox_home: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "fedbox", "simulate", str(DIGITS), "--clients", "1", "--hub",
         "--run-config", "num-server-rounds=1"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TMPDIR": str(temp)},
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert _refuses(_hub_port(out))
    assert list(temp.iterdir()) == []
