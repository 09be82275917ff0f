"""Reading another process's serving lease (what ``fedbox ui`` shows as running)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from fedbox.rpc.lease import lease_path, lease_stands, read_lease, served_apps
from fedbox.store import LocalStore


def _lease(pid: int, renewed: float, host: str | None = None) -> dict:
    host = host or socket.gethostname()
    return {"instance": "i", "host": host, "pid": pid, "started": renewed, "renewed": renewed}


def test_a_lease_stands_while_renewed_and_its_process_lives() -> None:
    now = time.time()
    assert lease_stands(_lease(os.getpid(), now))
    assert not lease_stands(_lease(os.getpid(), now - 3600))  # not renewed for an hour
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not lease_stands(_lease(gone.pid, now))  # its process ended
    assert lease_stands(_lease(gone.pid, now, host="elsewhere.example"))  # cannot tell there


def test_read_lease_and_the_apps_served_from_a_state_dir(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    try:
        assert read_lease(store, "a@x.org", "rds") is None
        store.put(lease_path("a@x.org", "rds"), json.dumps(_lease(1, 2.0)).encode())
        assert read_lease(store, "a@x.org", "rds") == _lease(1, 2.0)
        store.put(lease_path("a@x.org", "t"), b"not json")
        assert read_lease(store, "a@x.org", "t") is None
    finally:
        store.close()
    state = tmp_path / "state"
    state.mkdir()
    for name in ("serving-rds.lock", "serving-t.lock", "futures.db"):
        (state / name).touch()
    assert served_apps(state) == ["rds", "t"]
