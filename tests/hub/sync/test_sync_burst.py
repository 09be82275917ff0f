"""A burst of small files: a few batched uploads on the writer's side, the feed's inline
bytes on the reader's, every file whole on the other side; refusals still per file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import httpx
from conftest import A, B
from hub_process import HubProcess, client_for
from sync_process import SHARED_RULES, SyncProcess, log_in, requests_by_route
from waiting import wait_until

BURST = 300
PUT, BATCH, GET = (
    "PUT /api/v1/files/{path:path}",
    "POST /api/v1/batch",
    "GET /api/v1/files/{path:path}",
)


def _requests(hub: HubProcess) -> dict[str, int]:
    return requests_by_route(httpx.get(f"{hub.url}/metrics").text)


def _content(i: int) -> bytes:
    return f"file {i}\n".encode() * (i % 7) if i % 50 else b""  # empty ones too


def test_a_burst_arrives_whole_in_few_requests(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    client_for(hub.url, A).put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES)
    log_in(hub.url, A), log_in(hub.url, B)
    a = start_sync(hub.url, A, tmp_path / "a")
    b = start_sync(hub.url, B, tmp_path / "b")
    wait_until(lambda: a.idle() and b.idle(), "both daemons' first sync")
    source = a.folder / f"datasites/{A}/public/burst"
    source.mkdir(parents=True)
    before = _requests(hub)
    for i in range(BURST):
        temp = source / f".{i:04}.tmp"
        temp.write_bytes(_content(i))
        os.rename(temp, source / f"{i:04}.txt")
    mirror = b.folder / f"datasites/{A}/public/burst"

    def arrived() -> int:
        return (
            len([p for p in mirror.iterdir() if not p.name.startswith(".")])
            if mirror.is_dir()
            else 0
        )

    wait_until(lambda: arrived() == BURST, "the burst in bob's folder")
    wait_until(lambda: a.idle() and b.idle(), "both daemons to settle")
    for i in range(BURST):
        assert (mirror / f"{i:04}.txt").read_bytes() == _content(i), i
    sent = {k: n - before.get(k, 0) for k, n in _requests(hub).items()}
    assert sent.get(BATCH, 0) >= 1, sent
    assert sent.get(PUT, 0) + sent.get(BATCH, 0) <= BURST // 4, sent  # far fewer than files
    assert sent.get(GET, 0) == 0, sent  # the bytes came with the feed
    assert a.status()["uploaded"] >= BURST and b.status()["downloaded"] >= BURST
    hub_side = client_for(hub.url, B)
    listed = hub_side.get("/api/v1/list", params={"prefix": f"datasites/{A}/public/burst"})
    assert {f["path"].rsplit("/", 1)[1]: f["sha256"] for f in listed.json()["files"]} == {
        f"{i:04}.txt": hashlib.sha256(_content(i)).hexdigest() for i in range(BURST)
    }


def test_a_burst_of_forbidden_writes_is_set_aside_file_by_file(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    alice = client_for(hub.url, A)
    alice.put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES)
    alice.put(f"/api/v1/files/datasites/{A}/public/keep.txt", content=b"alice's")
    log_in(hub.url, B)
    b = start_sync(hub.url, B, tmp_path / "b")
    public = b.folder / f"datasites/{A}/public"
    shared = b.folder / f"datasites/{A}/shared"
    wait_until(lambda: (public / "keep.txt").is_file() and b.idle(), "alice's public file")
    shared.mkdir(parents=True)
    for i in range(20):  # bob may write shared/, not public/: one burst, mixed
        (public / f"no{i:02}.txt").write_bytes(b"refused")
        (shared / f"yes{i:02}.txt").write_bytes(b"accepted")
    for i in range(20):
        wait_until(lambda i=i: (public / f"no{i:02}.rejected.txt").is_file(), "a rejected copy")
    wait_until(b.idle, "bob to settle")
    assert sorted(p.name for p in public.iterdir() if p.name.startswith("no")) == [
        f"no{i:02}.rejected.txt" for i in range(20)
    ]
    for i in range(20):
        got = alice.get(f"/api/v1/files/datasites/{A}/shared/yes{i:02}.txt")
        assert got.content == b"accepted"
        assert alice.get(f"/api/v1/files/datasites/{A}/public/no{i:02}.txt").status_code == 404
    assert len(b.status()["rejected"]) == 20
