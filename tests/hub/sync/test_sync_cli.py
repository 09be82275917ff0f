"""``fedbox sync --once`` and ``fedbox sync status`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import A
from hub_process import HubProcess
from sync_process import log_in, sync_once


def _fedbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedbox", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def test_once_then_status_plain_and_json(hub: HubProcess, tmp_path: Path) -> None:
    log_in(hub.url, A)
    folder = tmp_path / "a"
    (folder / f"datasites/{A}/public").mkdir(parents=True)
    (folder / f"datasites/{A}/public/one.txt").write_text("1")
    (folder / f"datasites/{A}/public/empty").write_text("")
    out = sync_once(hub.url, A, folder)
    assert "2 up, 0 down, 0 deleted, 0 moved, 0 conflicts, 0 rejected" in out
    assert "0 up, 0 down" in sync_once(hub.url, A, folder)  # nothing changed since
    shown = _fedbox("sync", "status", "--dir", str(folder))
    assert shown.returncode == 0, shown.stderr
    assert "0 uploads, 0 downloads" in shown.stdout and "stopped" in shown.stdout
    status = json.loads(_fedbox("sync", "status", "--dir", str(folder), "--json").stdout)
    assert status["uploaded"] == 0 and status["lag"] == 0 and not status["running"]
    assert status["email"] == A and status["last_error"] is None


def test_clear_errors(tmp_path: Path) -> None:
    missing = _fedbox("sync", "--dir", str(tmp_path))
    assert missing.returncode == 2 and "needs --hub, --email and --dir" in missing.stderr
    never = _fedbox("sync", "status", "--dir", str(tmp_path))
    assert never.returncode == 1 and "no fedbox sync has run on" in never.stderr
    logged_out = _fedbox("sync", "--once", "--hub", "hub://127.0.0.1:9", "--email", A,
                         "--dir", str(tmp_path))  # fmt: skip
    assert logged_out.returncode == 1 and "fedbox login" in logged_out.stderr
    assert "Traceback" not in logged_out.stderr
