"""A rename travels as a rename: one hub move from the folder it happened in, one local
rename in the others (no bytes downloaded again), and a rename racing someone else's
write loses neither version."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
from conftest import A, B
from hub_process import HubProcess, client_for
from sync_process import SyncProcess, requests_by_route, two_sharing_daemons
from waiting import wait_until

SHARED = f"datasites/{A}/shared"
PUT = "PUT /api/v1/files/{path:path}"
GET = "GET /api/v1/files/{path:path}"
MOVE = "POST /api/v1/move"
DELETE = "DELETE /api/v1/files/{path:path}"


def _has(path: Path, data: bytes) -> Callable[[], bool]:
    return lambda: path.is_file() and path.read_bytes() == data


def _requests(hub: HubProcess) -> dict[str, int]:
    return requests_by_route(httpx.get(f"{hub.url}/metrics").text)


def _since(before: dict[str, int], after: dict[str, int], route: str) -> int:
    return after.get(route, 0) - before.get(route, 0)


def test_renames_become_hub_moves_and_local_renames(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    a, b = two_sharing_daemons(hub.url, A, B, tmp_path, start_sync)
    here = a.folder / SHARED
    (here / "dir").mkdir(parents=True)
    (here / "one.txt").write_bytes(b"a file renamed")
    for i in range(3):  # same size, same second: told apart by name
        (here / "dir" / f"f{i}.txt").write_bytes(f"in the folder {i}".encode())
    there = b.folder / SHARED
    wait_until(_has(there / "dir" / "f2.txt", b"in the folder 2"), "the folder at bob's")
    wait_until(_has(there / "one.txt", b"a file renamed"), "the file at bob's")
    wait_until(lambda: a.idle() and b.idle(), "both to settle")
    downloaded = b.status()["downloaded"]
    before = _requests(hub)

    os.rename(here / "one.txt", here / "two.txt")
    os.rename(here / "dir", here / "moved")
    wait_until(_has(there / "two.txt", b"a file renamed"), "the rename at bob's")
    for i in range(3):
        wait_until(_has(there / "moved" / f"f{i}.txt", f"in the folder {i}".encode()), "files")
    wait_until(lambda: a.idle() and b.idle(), "both to settle")

    after = _requests(hub)
    assert _since(before, after, MOVE) == 4
    assert _since(before, after, PUT) == 0 and _since(before, after, DELETE) == 0
    assert _since(before, after, GET) == 0  # bob renamed his copies: no bytes came again
    assert not (there / "one.txt").exists()
    assert not (there / "dir").exists()  # emptied by the renames: removed (no ghost tree)
    wait_until(lambda: a.status()["moved"] == b.status()["moved"] == 4, "the counts saved")
    assert b.status()["downloaded"] == downloaded
    listed = client_for(hub.url, B).get("/api/v1/list", params={"prefix": SHARED}).json()
    assert sorted(f["path"] for f in listed["files"]) == [
        f"{SHARED}/moved/f0.txt", f"{SHARED}/moved/f1.txt", f"{SHARED}/moved/f2.txt",
        f"{SHARED}/two.txt",
    ]  # fmt: skip


def test_a_rename_onto_a_path_written_meanwhile_keeps_both(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    a, b = two_sharing_daemons(hub.url, A, B, tmp_path, start_sync)
    here = a.folder / SHARED
    here.mkdir(parents=True)
    (here / "draft.txt").write_bytes(b"alice's draft")
    wait_until(_has(b.folder / SHARED / "draft.txt", b"alice's draft"), "the draft at bob's")
    wait_until(lambda: a.idle() and b.idle(), "both to settle")
    assert a.proc is not None
    a.proc.send_signal(signal.SIGSTOP)  # Bob writes while Alice's daemon hears nothing
    try:
        client_for(hub.url, B).put(f"/api/v1/files/{SHARED}/final.txt", content=b"bob's final")
        os.rename(here / "draft.txt", here / "final.txt")
    finally:
        a.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: [p for p in here.iterdir() if ".conflict" in p.name], "the conflict copy")
    wait_until(lambda: a.idle() and b.idle(), "both to settle")
    (copy,) = [p for p in here.iterdir() if ".conflict" in p.name]
    assert copy.read_bytes() == b"alice's draft"
    assert (here / "final.txt").read_bytes() == b"bob's final"
    assert client_for(hub.url, A).get(f"/api/v1/files/{SHARED}/final.txt").content == b"bob's final"
