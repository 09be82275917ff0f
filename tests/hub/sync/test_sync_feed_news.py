"""News from the feed that the journal already holds (mostly the daemon's own uploads
coming back) queue nothing; anything newer, or a move, is settled as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import A
from hub_process import HubProcess
from sync_process import log_in

from fedbox.hub.sync import SyncDaemon, SyncOptions
from fedbox.hub.sync.journal import Synced

SHA = "a" * 64
HERE = f"datasites/{A}/news"


def _put(path: str, seq: int, sha256: str = SHA) -> dict[str, Any]:
    return {"op": "put", "path": path, "seq": seq, "sha256": sha256, "size": 3}


def test_news_the_journal_holds_queue_nothing(hub: HubProcess, tmp_path: Path) -> None:
    log_in(hub.url, A)
    daemon = SyncDaemon(SyncOptions(folder=tmp_path / "a", hub=hub.url, email=A, min_free=0))
    try:
        for name in ("held", "older", "other-bytes", "absent", "moved", "deleted"):
            daemon.journal.put(f"{HERE}/{name}.txt", Synced(7, SHA, 3, 1))
        daemon.journal.put(f"{HERE}/absent.txt", Synced(7, SHA, 3, 1, absent=True))
        daemon._on_changes([_put(f"{HERE}/held.txt", 7)], 10)
        assert daemon.work.pending() == (0, 0)
        assert daemon.journal.meta("cursor") == "10"  # nothing to wait for: saved at once
        daemon._on_changes(
            [
                _put(f"{HERE}/held.txt", 7),
                _put(f"{HERE}/older.txt", 8),
                _put(f"{HERE}/other-bytes.txt", 7, "b" * 64),
                _put(f"{HERE}/absent.txt", 7),
                _put(f"{HERE}/new.txt", 9),
                {"op": "move", "path": f"{HERE}/moved-to.txt", "old_path": f"{HERE}/moved.txt",
                 "seq": 11, "sha256": SHA, "size": 3},
                _put(f"{HERE}/deleted.txt", 7),
                {"op": "delete", "path": f"{HERE}/deleted.txt", "seq": 12},
            ],
            12,
        )  # fmt: skip
        assert daemon.work.pending() == (7, 7)  # all but held.txt
        assert daemon.journal.meta("cursor") == "10"
    finally:
        daemon.stop()
