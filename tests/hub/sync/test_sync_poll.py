"""A daemon without OS file events (``--poll``, as where inotify is missing or out of
instances): it walks its folder every few seconds, and creates, edits, renames and
deletes still travel both ways."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
from conftest import A, B
from hub_process import HubProcess, client_for
from sync_process import SHARED_RULES, SyncProcess, log_in, requests_by_route
from waiting import wait_until

SHARED = f"datasites/{A}/shared"


def _has(path: Path, data: bytes | None) -> Callable[[], bool]:
    if data is None:
        return lambda: not path.exists()
    return lambda: path.is_file() and path.read_bytes() == data


def test_a_polling_daemon_syncs_both_ways(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    client_for(hub.url, A).put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES)
    log_in(hub.url, A), log_in(hub.url, B)
    a = start_sync(hub.url, A, tmp_path / "a", "--poll")
    b = start_sync(hub.url, B, tmp_path / "b")
    wait_until(lambda: a.status()["events"] and b.status()["events"], "the statuses")
    assert a.status()["events"].startswith("a walk every")
    assert b.status()["events"] == "inotify"
    mine, theirs = a.folder / SHARED, b.folder / SHARED
    mine.mkdir(parents=True)
    (mine / "new.txt").write_bytes(b"created")
    wait_until(_has(theirs / "new.txt", b"created"), "the create")
    (mine / "new.txt").write_bytes(b"edited here")
    wait_until(_has(theirs / "new.txt", b"edited here"), "the edit")
    (theirs / "back.txt").write_bytes(b"from bob")
    wait_until(_has(mine / "back.txt", b"from bob"), "bob's file")
    wait_until(lambda: a.idle() and b.idle(), "both to settle")
    moves = requests_by_route(httpx.get(f"{hub.url}/metrics").text).get("POST /api/v1/move", 0)
    os.rename(mine / "new.txt", mine / "renamed.txt")
    wait_until(_has(theirs / "renamed.txt", b"edited here"), "the rename")
    wait_until(_has(theirs / "new.txt", None), "the old name gone")
    after = requests_by_route(httpx.get(f"{hub.url}/metrics").text).get("POST /api/v1/move", 0)
    assert after == moves + 1  # one walk saw both names: a move, as with inotify
    (mine / "back.txt").unlink()
    wait_until(_has(theirs / "back.txt", None), "the delete")
    assert client_for(hub.url, B).get(f"/api/v1/files/{SHARED}/back.txt").status_code == 404
