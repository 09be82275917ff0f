"""What does not sync: ignore rules and defaults, paths outside the hub's namespace, what
a selection leaves out (the hub does not even send it), and downloads a full disk cannot
take (refused one by one, the rest goes on)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from conftest import A, B
from hub_process import HubProcess, client_for
from small_disk import small_tmpfs
from sync_process import SHARED_RULES, SyncProcess, log_in, requests_by_route
from waiting import wait_until

SHARED = f"datasites/{A}/shared"


def test_ignored_files_stay_home(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    client_for(hub.url, A).put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES)
    log_in(hub.url, A), log_in(hub.url, B)
    home = tmp_path / "a"
    home.mkdir()
    (home / ".fedboxignore").write_text("*.log\nscratch/\n!keep.log\n")
    a = start_sync(hub.url, A, home)
    b = start_sync(hub.url, B, tmp_path / "b")
    shared = home / SHARED
    for rel in ("run.log", "scratch/x.txt", "__pycache__/m.pyc", ".hidden", "edit.txt~",
                "venv/lib/x.py", "keep.log", "z.conflict.txt"):  # fmt: skip
        (shared / rel).parent.mkdir(parents=True, exist_ok=True)
        (shared / rel).write_text(rel)
    (home / "notes.txt").write_text("outside the hub's namespace")
    (shared / "last.txt").write_text("synced")
    wait_until(lambda: (b.folder / SHARED / "last.txt").is_file(), "the synced file")
    wait_until(a.idle, "alice to settle")
    listed = client_for(hub.url, A).get("/api/v1/list", params={"prefix": SHARED}).json()
    synced = sorted(f["path"] for f in listed["files"])
    assert synced == [f"{SHARED}/keep.log", f"{SHARED}/last.txt"]
    assert a.status()["last_error"] is None


def test_a_selection_is_applied_by_the_hub(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    alice = client_for(hub.url, A)
    alice.put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES)
    log_in(hub.url, B)
    only = f"datasites/{A}/public/**"
    b = start_sync(hub.url, B, tmp_path / "b", "--only", only)
    before = requests_by_route(httpx.get(f"{hub.url}/metrics").text)
    # Above the feed's inline limit: were it selected, it would cost a GET.
    alice.put(f"/api/v1/files/{SHARED}/big-unwanted.bin", content=b"x" * 100_000)
    alice.put(f"/api/v1/files/datasites/{A}/public/wanted.txt", content=b"yes")
    wait_until(lambda: (b.folder / f"datasites/{A}/public/wanted.txt").is_file(), "the file")
    wait_until(b.idle, "bob to settle")
    after = requests_by_route(httpx.get(f"{hub.url}/metrics").text)
    route = "GET /api/v1/files/{path:path}"
    assert after.get(route, 0) - before.get(route, 0) == 0  # wanted: inline; unwanted: never
    assert not (b.folder / SHARED).exists()
    # The feed itself leaves the unselected change out (the cursor still moves past it).
    bob = client_for(hub.url, B)
    feed = bob.get("/api/v1/changes", params={"after": 0, "only": only}).json()
    files = {c["path"] for c in feed["changes"] if c["op"] != "rules"}  # the rule lists it too
    assert files == {f"datasites/{A}/public/wanted.txt"}
    assert feed["cursor"] == bob.get("/healthz").json()["head"]
    everything = bob.get("/api/v1/changes", params={"after": 0}).json()["changes"]
    assert f"{SHARED}/big-unwanted.bin" in [c["path"] for c in everything]
    assert bob.get("/api/v1/changes", params={"only": "!x"}).status_code == 400


def test_a_full_disk_refuses_the_download_and_syncs_the_rest(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    alice = client_for(hub.url, A)
    alice.put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES)
    log_in(hub.url, B)
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        b = start_sync(hub.url, B, disk / "b", "--min-free", "512KiB")
        alice.put(f"/api/v1/files/{SHARED}/big.bin", content=b"x" * (3 << 19))  # 1.5 MiB
        alice.put(f"/api/v1/files/{SHARED}/small.txt", content=b"fits")
        wait_until(lambda: (b.folder / SHARED / "small.txt").is_file(), "the small file")
        wait_until(lambda: b.status()["refused"], "the refusal in the status")
        reason = b.status()["refused"][0]["reason"]
        assert f"not downloading {SHARED}/big.bin" in reason and "512.0 KiB" not in reason
        assert "below the margin of 0.5 MiB" in reason
        assert not (b.folder / SHARED / "big.bin").exists()
        assert not [p for p in (b.folder / SHARED).iterdir() if p.name.startswith(".")]
        alice.put(f"/api/v1/files/{SHARED}/later.txt", content=b"still syncing")
        wait_until(lambda: (b.folder / SHARED / "later.txt").is_file(), "later files")
        b.kill()
