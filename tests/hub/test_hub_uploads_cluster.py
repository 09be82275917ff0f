"""Resumable uploads over PostgreSQL + S3 belong to no hub process: a participant killed
mid-upload resumes through another process, and abandoned parts leave the bucket.

The two processes have data folders of their own: only the database and the bucket
hold an upload's state and bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import fsspec
import httpx
import psycopg
import pytest
from hub_process import client_for
from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from hub_cluster import HubCluster

from fedbox.hub.credentials import login, request_code
from fedbox.store import open_store

A = "alice@x.org"
TARGET = f"datasites/{A}/big.bin"
SIZE = 24 << 20
PART = 2 << 20


@pytest.fixture(scope="module")
def cluster_flags() -> tuple[str, ...]:
    return ("--upload-expiry", "3600")


def _bucket_keys(cluster: HubCluster) -> set[str]:
    """The blob keys in the cluster's bucket (the last part of each object's name)."""
    options = json.loads(cluster.env["FEDBOX_STORAGE_OPTIONS"])["s3"]
    fs, root = fsspec.core.url_to_fs(cluster.blobs, **options)
    fs.invalidate_cache()
    return {path.rsplit("/", 1)[-1] for path in fs.find(root)}


def _query(cluster: HubCluster, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(cluster.db, autocommit=True) as db:
        cursor = db.execute(sql, args)
        return cursor.fetchall() if cursor.description else []


def _offered(client: httpx.Client) -> dict:
    answer = client.post("/api/v1/uploads", json={"path": TARGET, "size": SIZE})
    answer.raise_for_status()
    return dict(answer.json())


def test_an_upload_killed_on_one_process_resumes_on_the_other(
    cluster: HubCluster, tmp_path: Path
) -> None:
    first, second = (f"hub://127.0.0.1:{proc.port}" for proc in cluster.procs)
    for url in (first, second):
        login(url, A, request_code(url, A) or "")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(SIZE))
    # A participant that knows only the first process, uploads in parts, and is killed.
    script = textwrap.dedent(f"""
        from fedbox.store import open_store
        store = open_store({first!r}, resumable_above=0, part_size={PART})
        with open({str(source)!r}, "rb") as f:
            store.put({TARGET!r}, f)
    """)
    on_second = client_for(cluster.urls[1], A)
    child = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    try:
        wait_until(
            lambda: _offered(on_second)["offset"] >= 2 * PART, "two parts to arrive", timeout=60
        )
    finally:
        child.kill()
        child.wait()
    kept = _offered(on_second)
    assert 0 < kept["offset"] < SIZE, "the second process offers what the first received"
    with open_store(second, resumable_above=0, part_size=PART) as store:
        assert not store.exists(TARGET), "a half upload became visible"
        with open(source, "rb") as f:
            store.put(TARGET, f)
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    with open_store(first) as store, store.open(TARGET) as f:
        assert hashlib.sha256(f.read()).hexdigest() == expected
    assert on_second.head(f"/api/v1/uploads/{kept['id']}").status_code == 404
    assert _query(cluster, "SELECT blob FROM upload_parts WHERE upload_id = %s", kept["id"]) == []
    (blob,) = _query(cluster, "SELECT blob FROM files WHERE path = %s", TARGET)
    files = {b for (b,) in _query(cluster, "SELECT blob FROM files")}
    parts = {b for (b,) in _query(cluster, "SELECT blob FROM upload_parts")}
    assert blob[0] in _bucket_keys(cluster)
    assert _bucket_keys(cluster) == files | parts, "no part is left in the bucket"


def test_an_abandoned_upload_leaves_the_bucket(cluster: HubCluster) -> None:
    first, second = (client_for(url, A) for url in cluster.urls)

    def begin(client: httpx.Client, name: str) -> str:
        path = f"datasites/{A}/{name}"
        upload = str(client.post("/api/v1/uploads", json={"path": path, "size": 10}).json()["id"])
        sent = client.patch(
            f"/api/v1/uploads/{upload}", content=b"abc", headers={"Upload-Offset": "0"}
        )
        assert sent.headers["upload-offset"] == "3"
        return upload

    abandoned, active = begin(first, "gone.bin"), begin(first, "kept.bin")
    ((gone_part,),) = _query(
        cluster, "SELECT blob FROM upload_parts WHERE upload_id = %s", abandoned
    )
    ((kept_part,),) = _query(cluster, "SELECT blob FROM upload_parts WHERE upload_id = %s", active)
    assert {gone_part, kept_part} <= _bucket_keys(cluster)
    _query(cluster, "UPDATE uploads SET touched = touched - 7200 WHERE id = %s", abandoned)
    begin(second, "next.bin")  # any process's next start sweeps
    assert first.head(f"/api/v1/uploads/{abandoned}").status_code == 404
    keys = _bucket_keys(cluster)
    assert gone_part not in keys
    assert kept_part in keys
    assert first.head(f"/api/v1/uploads/{active}").headers["upload-offset"] == "3"
