"""Federated learning through mirrored folders: every participant runs ``fedbox run`` on
its own plain folder, and only ``fedbox sync`` daemons carry the files through the hub."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hub_process import HubProcess
from sync_process import SyncProcess, log_in

DIGITS = Path(__file__).resolve().parents[3] / "examples" / "digits"
AGG = "ds@uni.org"
SITES = ["do0@a.org", "do1@b.org"]


def _run(email: str, root: Path, log: Path) -> subprocess.Popen[bytes]:
    sites = [arg for s in SITES for arg in ("--datasite", s)]
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fedbox", "run", str(DIGITS), "--email", email,
             "--root", str(root), "--aggregator", AGG, *sites, "--encrypt",
             "--app-name", f"{AGG}_digits_1700000000", "--run-config", "num-server-rounds=2"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "300"},
        )  # fmt: skip


def test_digits_encrypted_through_two_mirrored_folders(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    folders = {who: tmp_path / who.split("@")[0] for who in (AGG, *SITES)}
    for who, folder in folders.items():
        log_in(hub.url, who)
        start_sync(hub.url, who, folder)
    logs = {who: tmp_path / f"{who}.log" for who in folders}
    runs = {who: _run(who, folders[who], logs[who]) for who in folders}
    try:
        assert runs[AGG].wait(timeout=240) == 0, logs[AGG].read_text()
        for site in SITES:
            assert runs[site].wait(timeout=60) == 0, logs[site].read_text()
    finally:
        for proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out = logs[AGG].read_text()
    accuracy = re.search(r"final test accuracy ([0-9.]+)", out)
    assert accuracy and float(accuracy.group(1)) >= 0.85, out
    assert "encryption off" not in out
    # Each site's folder holds what it may read and nothing of the other's traffic.
    assert not list(folders[SITES[0]].glob(f"syft_outbox_inbox_*{SITES[1]}*"))
    blobs = [p.read_bytes() for p in (hub.data / "blobs").rglob("*") if p.is_file()]
    assert not any(b"train-loss" in blob for blob in blobs)  # the hub saw ciphertext only
