"""A remote delete or rename leaves no ghost folders: the receiving daemon removes the
folders it emptied, and only those (never the datasite's or an outbox's own folder, a
folder its user made, or one that still holds its user's file)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
from conftest import A, B
from hub_process import HubProcess
from sync_process import SyncProcess, requests_by_route, two_sharing_daemons
from waiting import wait_until

from fedbox.datasite.paths import outbox_dir

DATASITE = f"datasites/{A}"
SHARED = f"{DATASITE}/shared"
OUTBOX = outbox_dir(A, B)
WRITES = ("PUT /api/v1/files/{path:path}", "DELETE /api/v1/files/{path:path}", "POST /api/v1/move")


def _writes(hub: HubProcess) -> dict[str, int]:
    counts = requests_by_route(httpx.get(f"{hub.url}/metrics").text)
    return {route: counts.get(route, 0) for route in WRITES}


def _write(folder: Path, rel: str, data: bytes) -> None:
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    (folder / rel).write_bytes(data)


def _arrived(daemon: SyncProcess, *rels: str) -> None:
    wait_until(lambda: all((daemon.folder / rel).is_file() for rel in rels), "the files")


def _writes_since(hub: HubProcess, before: dict[str, int]) -> dict[str, int]:
    after = _writes(hub)
    return {route: after[route] - before[route] for route in WRITES}


def _settled(*daemons: SyncProcess) -> None:
    wait_until(lambda: all(d.idle() for d in daemons), "the daemons to settle")


def test_a_remote_delete_removes_the_folders_it_emptied_up_to_the_datasite(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    a, b = two_sharing_daemons(hub.url, A, B, tmp_path, start_sync)
    deep = f"{SHARED}/x/y/z/deep.txt"
    message = f"{OUTBOX}/app/rpc/messages/0b1c6f9e-8d3a-4d62-9f0e-3f1a2b4c5d6e.request"
    _write(a.folder, deep, b"deep in a tree")
    _write(a.folder, message, b"a request")
    _arrived(b, deep, message)
    assert sorted(os.listdir(b.folder / DATASITE)) == ["shared"]  # the rule file is Alice's
    _settled(a, b)
    before = _writes(hub)

    (a.folder / deep).unlink()
    (a.folder / message).unlink()
    wait_until(lambda: not (b.folder / SHARED).exists(), "bob's emptied folders to go")
    wait_until(lambda: not (b.folder / OUTBOX / "app").exists(), "the emptied outbox folders")
    _settled(a, b)

    assert (b.folder / DATASITE).is_dir() and not os.listdir(b.folder / DATASITE)
    assert (b.folder / OUTBOX).is_dir() and not os.listdir(b.folder / OUTBOX)
    assert (a.folder / deep).parent.is_dir(), "alice's own folders are her user's to remove"
    assert _writes_since(hub, before) == {
        WRITES[0]: 0, WRITES[1]: 2, WRITES[2]: 0,
    }, "alice's two deletes, and no echo of bob's removals"  # fmt: skip


def test_a_remote_folder_rename_leaves_no_old_folder_tree(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    a, b = two_sharing_daemons(hub.url, A, B, tmp_path, start_sync)
    files = {"a/b/one.txt": b"one", "a/two.txt": b"two", "three.txt": b"three"}
    for rel, data in files.items():
        _write(a.folder, f"{SHARED}/old/{rel}", data)
    _arrived(b, *(f"{SHARED}/old/{rel}" for rel in files))
    _settled(a, b)
    before = _writes(hub)

    os.rename(a.folder / SHARED / "old", a.folder / SHARED / "new")
    _arrived(b, *(f"{SHARED}/new/{rel}" for rel in files))
    wait_until(lambda: not (b.folder / SHARED / "old").exists(), "bob's old folder tree to go")
    _settled(a, b)

    assert {rel: (b.folder / SHARED / "new" / rel).read_bytes() for rel in files} == files
    assert os.listdir(b.folder / SHARED) == ["new"]
    assert _writes_since(hub, before) == {
        WRITES[0]: 0, WRITES[1]: 0, WRITES[2]: 3,
    }, "alice's three moves, and no echo of bob's removals"  # fmt: skip


def test_folders_holding_what_the_user_put_there_stay(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    a, b = two_sharing_daemons(hub.url, A, B, tmp_path, start_sync)
    near_empty, near_file = f"{SHARED}/x/y/z/deep.txt", f"{SHARED}/p/q/r/deep.txt"
    _write(a.folder, near_empty, b"beside bob's empty folder")
    _write(a.folder, near_file, b"beside bob's file")
    _arrived(b, near_empty, near_file)
    (b.folder / SHARED / "x" / "y" / "kept").mkdir()  # bob's, empty on purpose
    _settled(a, b)
    assert b.proc is not None
    b.proc.send_signal(signal.SIGSTOP)  # alice deletes while bob adds a file
    try:
        (a.folder / near_empty).unlink()
        (a.folder / near_file).unlink()
        wait_until(lambda: a.idle() and a.status()["deleted"] == 2, "alice's deletes sent")
        _write(b.folder, f"{SHARED}/p/q/mine.txt", b"bob's")
    finally:
        b.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: not (b.folder / SHARED / "x/y/z").exists(), "bob's emptied folder to go")
    wait_until(lambda: not (b.folder / SHARED / "p/q/r").exists(), "the other emptied one")
    _arrived(a, f"{SHARED}/p/q/mine.txt")
    _settled(a, b)

    assert (b.folder / SHARED / "x/y/kept").is_dir(), "bob's empty folder stays (and y with it)"
    assert os.listdir(b.folder / SHARED / "p/q") == ["mine.txt"]
    assert (b.folder / SHARED / "p/q/mine.txt").read_bytes() == b"bob's"
