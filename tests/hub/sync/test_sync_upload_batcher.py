"""The upload batcher on a real hub: many workers at once, each answered on its own (a
version, or the refusal its own PUT would get), in a few shared requests, none left
waiting."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from conftest import A, B
from hub_process import HubProcess, client_for
from sync_process import SHARED_RULES, log_in, requests_by_route

from fedbox.hub.sync.batch import UploadBatcher
from fedbox.hub.sync.reconcile import LocalFile, RemoteFile
from fedbox.hub.sync.remote import Refused, SyncRemote

WORKERS = 48
ROUNDS = 4


def _upload(batcher: UploadBatcher, folder: Path, path: str) -> RemoteFile | Exception:
    source = folder / path.replace("/", "_")
    source.write_bytes(path.encode())
    local = LocalFile(hashlib.sha256(path.encode()).hexdigest(), len(path), 0)
    try:
        return batcher.upload(path, source, local, None)
    except Refused as exc:
        return exc


def test_concurrent_uploads_are_answered_one_by_one_in_few_requests(
    hub: HubProcess, tmp_path: Path
) -> None:
    client_for(hub.url, A).put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES)
    log_in(hub.url, B)
    remote = SyncRemote(hub.url, B)
    batcher = UploadBatcher(remote)
    before = requests_by_route(httpx.get(f"{hub.url}/metrics").text)
    paths = [
        f"datasites/{A}/public/{i}.txt" if i % 10 == 3 else f"datasites/{B}/up/{i}.txt"
        for i in range(WORKERS * ROUNDS)
    ]  # bob may not write alice's public/: those are refused, file by file
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda p: _upload(batcher, tmp_path, p), paths))
    remote.close()
    after = requests_by_route(httpx.get(f"{hub.url}/metrics").text)
    for path, result in zip(paths, results, strict=True):
        if f"/{A}/" in path:
            assert isinstance(result, Refused), (path, result)
        else:
            assert isinstance(result, RemoteFile), (path, result)
            assert result.sha256 == hashlib.sha256(path.encode()).hexdigest()
    versions = [r.version for r in results if isinstance(r, RemoteFile)]
    assert len(set(versions)) == len(versions)
    sent = sum(after.get(k, 0) - before.get(k, 0) for k in after if "batch" in k or "PUT" in k)
    assert 1 <= sent <= len(paths) // 4, sent
    bob = client_for(hub.url, B)
    for path in paths[:WORKERS]:
        if f"/{B}/" in path:
            assert bob.get(f"/api/v1/files/{path}").content == path.encode()
