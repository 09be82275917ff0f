"""Requests and responses travel ahead of bulk files: a daemon catching up on a backlog
writes the waiting ``.request`` before the dataset queued beside it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import A, B
from hub_process import HubProcess, client_for
from sync_process import SHARED_RULES, SyncProcess, log_in
from waiting import wait_until

BULK = 300
WORKERS = 8


def test_a_request_overtakes_a_backlog_of_bulk_files(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    alice = client_for(hub.url, A)
    alice.put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES)
    for i in range(BULK):
        alice.put(f"/api/v1/files/datasites/{A}/public/data/{i:03}.bin", content=b"x" * 50_000)
    request = f"syft_outbox_inbox_{A}_to_{B}/app/rpc/e/11111111-1111-4111-8111-111111111111.request"
    alice.put(f"/api/v1/files/{request}", content=b"call me")  # written last
    log_in(hub.url, B)
    b = start_sync(hub.url, B, tmp_path / "b", "--workers", str(WORKERS))
    data = b.folder / f"datasites/{A}/public/data"

    def synced() -> list[Path]:  # not the daemon's hidden temporaries of files in flight
        return [p for p in data.iterdir() if not p.name.startswith(".")] if data.is_dir() else []

    wait_until(lambda: len(synced()) == BULK, "the backlog")
    arrived = (b.folder / request).stat().st_mtime_ns
    before = [p for p in synced() if p.stat().st_mtime_ns < arrived]
    assert len(before) <= WORKERS, len(before)  # at most those already in flight
