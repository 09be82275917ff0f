"""``cleanup`` removes the folders it emptied, and only those (issue 11.19)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fedbox.datasite.paths import blob_path, outbox_dir, request_path, response_path
from fedbox.rpc import cleanup
from fedbox.store import LocalStore

ME, PEER = "a@x.org", "b@x.org"
IDS = ["0b1c6f9e-8d3a-4d62-9f0e-3f1a2b4c5d6e", "1b1c6f9e-8d3a-4d62-9f0e-3f1a2b4c5d6e"]


def _put_old(store: LocalStore, path: object) -> None:
    store.put(str(path), b"old")
    past = time.time() - 30 * 86400
    os.utime(store.root / str(path), (past, past))


def _folders(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir())


def test_cleanup_removes_the_folders_it_emptied_and_no_others(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root", watch_mode="poll")
    _put_old(store, request_path(ME, PEER, "old-app", "echo", IDS[0]))
    _put_old(store, request_path(ME, PEER, "old-app", "other", IDS[1]))
    _put_old(store, blob_path(ME, PEER, "old-app", "ab" * 32))
    _put_old(store, request_path(ME, PEER, "kept-app", "echo", IDS[0]))
    _put_old(store, request_path(ME, PEER, "kept-app", "echo", IDS[0]).parent / ".quarantine/x")
    _put_old(store, response_path(ME, PEER, "theirs", "echo", IDS[0]))  # PEER's outbox
    (store.root / outbox_dir(ME, PEER) / "was-empty").mkdir()
    (store.root / outbox_dir(PEER, ME) / "empty-of-theirs").mkdir()
    (store.root / outbox_dir(PEER, ME) / "theirs" / "rpc" / "echo" / IDS[0]).with_suffix(
        ".response"
    ).unlink()

    report = cleanup(store, ME, older_than=60, now=time.time())

    assert report.files == 4
    mine = outbox_dir(ME, PEER)
    theirs = outbox_dir(PEER, ME)
    assert _folders(store.root) == sorted(
        [
            mine,
            f"{mine}/kept-app",
            f"{mine}/kept-app/rpc",
            f"{mine}/kept-app/rpc/echo",
            f"{mine}/kept-app/rpc/echo/.quarantine",
            f"{mine}/was-empty",
            theirs,
            f"{theirs}/empty-of-theirs",
            f"{theirs}/theirs",
            f"{theirs}/theirs/rpc",
            f"{theirs}/theirs/rpc/echo",
        ]
    ), "emptied folders went; the outbox, a quarantine, others' and untouched ones stayed"
