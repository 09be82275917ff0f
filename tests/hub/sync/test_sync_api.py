"""The Python API: a daemon started and stopped in-process, and one reconcile."""

from __future__ import annotations

from pathlib import Path

from conftest import A
from hub_process import HubProcess, client_for
from sync_process import log_in
from waiting import wait_until

from fedbox.hub.sync import SyncDaemon, SyncOptions, read_status


def test_start_stop_and_run_once(hub: HubProcess, tmp_path: Path) -> None:
    log_in(hub.url, A)
    folder = tmp_path / "a"
    folder.mkdir()
    alice = client_for(hub.url, A)
    options = SyncOptions(folder=folder, hub=hub.url, email=A, min_free=0)
    with SyncDaemon(options) as daemon:
        (folder / f"datasites/{A}/notes").mkdir(parents=True)
        (folder / f"datasites/{A}/notes/a.txt").write_text("from the API")
        wait_until(lambda: alice.head(f"/api/v1/files/datasites/{A}/notes/a.txt").status_code
                   == 200, "the upload")  # fmt: skip
        alice.put(f"/api/v1/files/datasites/{A}/notes/b.txt", content=b"from the hub")
        wait_until(lambda: (folder / f"datasites/{A}/notes/b.txt").is_file(), "the download")
        assert daemon.wait_idle(timeout=30)
    assert not read_status(folder).running
    alice.delete(f"/api/v1/files/datasites/{A}/notes/b.txt")
    status = SyncDaemon(options).run_once(timeout=60)
    assert status.deleted == 1 and not (folder / f"datasites/{A}/notes/b.txt").exists()
