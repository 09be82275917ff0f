"""A watched folder removed and made again is watched again: ``fedbox sync`` removes the
folders a remote delete emptied, while an RPC watcher may be watching them, and the next
message into them makes them again (issue 14)."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import pytest

from fedbox.store import LocalStore
from fedbox.store.inotify import inotify_available
from fedbox.testing import wait_reported

pytestmark = pytest.mark.skipif(not inotify_available(), reason="Linux inotify only")

INBOX = "syft_outbox_inbox_a@x.org_to_b@y.org"
DEEP = f"{INBOX}/app/rpc/messages"


def test_a_folder_removed_and_made_again_is_watched_again(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s", watch_mode="events")
    with store.watch("", (".request",)) as watcher:
        for round_ in range(5):
            written, put = f"{DEEP}/written-{round_}.request", f"{DEEP}/put-{round_}.request"
            (store.root / DEEP).mkdir(parents=True)
            (store.root / written).write_bytes(b"x")  # closed after writing
            wait_reported(watcher, written, timeout=10)
            store.put(put, b"x")  # renamed in
            wait_reported(watcher, put, timeout=10)
            for path in (written, put):
                os.unlink(store.root / path)
            for folder in (DEEP, f"{INBOX}/app/rpc", f"{INBOX}/app"):
                os.rmdir(store.root / folder)  # the watches of all three go


def test_puts_land_and_are_reported_while_emptied_folders_are_removed(tmp_path: Path) -> None:
    """As ``fedbox sync`` does, another thread removes the emptied folders right after
    each file is deleted, while the next file is being put: every put still lands (the
    writer makes its folder again) and is reported (the folder made again is watched)."""
    store = LocalStore(tmp_path / "s", watch_mode="events")
    deleted: queue.SimpleQueue[bool] = queue.SimpleQueue()
    removed: list[str] = []

    def remove_emptied() -> None:
        while deleted.get():
            for folder in (DEEP, f"{INBOX}/app/rpc", f"{INBOX}/app"):
                try:
                    os.rmdir(store.root / folder)
                except OSError:  # not empty (the next put is there), or gone
                    break
                removed.append(folder)

    remover = threading.Thread(target=remove_emptied)
    with store.watch("", (".request",)) as watcher:
        remover.start()
        try:
            for i in range(200):
                path = f"{DEEP}/{i}.request"
                store.put(path, b"x")
                wait_reported(watcher, path, timeout=10)
                os.unlink(store.root / path)
                deleted.put(True)
        finally:
            deleted.put(False)
            remover.join()
    assert removed, "the folders were removed at least once"
