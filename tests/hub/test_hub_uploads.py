"""Resumable uploads: a client killed half-way leaves its bytes, and the next one resumes."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from hub_process import NO_LOGIN_LIMITS, HubProcess, client_for
from waiting import wait_until

from fedbox.hub.credentials import login, request_code
from fedbox.store import open_store

A = "alice@x.org"
TARGET = f"datasites/{A}/big.bin"
SIZE = 48 << 20
PART = 4 << 20


@pytest.fixture(scope="module")
def hub_args() -> tuple[str, ...]:
    return NO_LOGIN_LIMITS


@pytest.fixture(scope="module")
def alice(hub: HubProcess) -> httpx.Client:
    return client_for(hub.url, A)


def _offered(client: httpx.Client) -> dict:
    """The upload of TARGET the hub offers (the unfinished one, if any)."""
    answer = client.post("/api/v1/uploads", json={"path": TARGET, "size": SIZE})
    answer.raise_for_status()
    return dict(answer.json())


def _unreferenced_blobs(hub: HubProcess) -> set[str]:
    """Blobs on the hub's disk that neither a file nor an upload's part names."""
    on_disk = {p.name for p in (hub.data / "blobs").glob("??/*")}
    with sqlite3.connect(hub.data / "hub.db") as db:
        named = {
            r[0] for r in db.execute("SELECT blob FROM files UNION SELECT blob FROM upload_parts")
        }
    return on_disk - named


def test_a_killed_upload_resumes_where_it_stopped(hub: HubProcess, tmp_path: Path) -> None:
    url = f"hub://127.0.0.1:{hub.port}"
    login(url, A, request_code(url, A) or "")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(SIZE))
    # A participant that uploads slowly (parts of 4 MiB) and is killed part-way.
    script = textwrap.dedent(f"""
        from fedbox.store import open_store
        store = open_store({url!r}, resumable_above=0, part_size={PART})
        with open({str(source)!r}, "rb") as f:
            store.put({TARGET!r}, f)
    """)
    alice = client_for(hub.url, A)
    child = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    try:
        wait_until(lambda: _offered(alice)["offset"] >= 2 * PART, "two parts to arrive", timeout=60)
    finally:
        child.kill()
        child.wait()
    kept = _offered(alice)
    assert 0 < kept["offset"] < SIZE, "asking again gives the upload with what arrived"
    with open_store(url, resumable_above=0, part_size=PART) as store:
        assert not store.exists(TARGET), "a half upload became visible"
        with open(source, "rb") as f:
            store.put(TARGET, f)
        with store.open(TARGET) as f:
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(source.read_bytes()).digest()
    assert alice.head(f"/api/v1/uploads/{kept['id']}").status_code == 404, "the upload ended"
    assert _unreferenced_blobs(hub) == set(), "the parts were removed"


def test_appending_at_the_wrong_offset_is_409(alice: httpx.Client) -> None:
    state = alice.post("/api/v1/uploads", json={"path": f"datasites/{A}/o.bin", "size": 10}).json()
    bad = alice.patch(
        f"/api/v1/uploads/{state['id']}", content=b"abc", headers={"Upload-Offset": "5"}
    )
    assert bad.status_code == 409
    ok = alice.patch(
        f"/api/v1/uploads/{state['id']}", content=b"abc", headers={"Upload-Offset": "0"}
    )
    assert ok.headers["upload-offset"] == "3"
    assert alice.head(f"/api/v1/uploads/{state['id']}").headers["upload-offset"] == "3"
    short = alice.post(f"/api/v1/uploads/{state['id']}/commit")
    assert short.status_code == 409
    too_long = alice.patch(
        f"/api/v1/uploads/{state['id']}", content=b"x" * 20, headers={"Upload-Offset": "3"}
    )
    assert too_long.status_code == 409
    assert alice.get(f"/api/v1/files/datasites/{A}/o.bin").status_code == 404


def test_commit_checks_the_digest_and_conditions(alice: httpx.Client) -> None:
    path = f"datasites/{A}/d.bin"
    state = alice.post("/api/v1/uploads", json={"path": path, "size": 4}).json()
    alice.patch(f"/api/v1/uploads/{state['id']}", content=b"data", headers={"Upload-Offset": "0"})
    wrong = alice.post(
        f"/api/v1/uploads/{state['id']}/commit", headers={"X-Content-SHA256": "0" * 64}
    )
    assert wrong.status_code == 409
    right = alice.post(
        f"/api/v1/uploads/{state['id']}/commit",
        headers={"X-Content-SHA256": hashlib.sha256(b"data").hexdigest(), "If-None-Match": "*"},
    )
    assert right.status_code == 200
    assert alice.get(f"/api/v1/files/{path}").content == b"data"


def test_someone_elses_upload_is_invisible(hub: HubProcess, alice: httpx.Client) -> None:
    state = alice.post("/api/v1/uploads", json={"path": f"datasites/{A}/p.bin", "size": 1}).json()
    bob = client_for(hub.url, "bob@x.org")
    assert bob.head(f"/api/v1/uploads/{state['id']}").status_code == 404
    other = bob.patch(
        f"/api/v1/uploads/{state['id']}", content=b"x", headers={"Upload-Offset": "0"}
    )
    assert other.status_code == 404
    into = bob.post("/api/v1/uploads", json={"path": f"datasites/{A}/p.bin", "size": 1})
    assert into.status_code == 404


def test_an_abandoned_upload_is_removed_after_the_expiry(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "hub", *NO_LOGIN_LIMITS, "--upload-expiry", "3600")
    try:
        alice = client_for(hub.url, A)

        def begin(name: str) -> str:
            path = f"datasites/{A}/{name}"
            state = alice.post("/api/v1/uploads", json={"path": path, "size": 10}).json()
            upload = str(state["id"])
            alice.patch(f"/api/v1/uploads/{upload}", content=b"abc", headers={"Upload-Offset": "0"})
            return upload

        abandoned, active = begin("gone.bin"), begin("kept.bin")
        with sqlite3.connect(hub.data / "hub.db") as db:
            (part,) = db.execute("SELECT blob FROM upload_parts WHERE upload_id = ?", (abandoned,))
            # No bytes for two hours.
            db.execute("UPDATE uploads SET touched = touched - 7200 WHERE id = ?", (abandoned,))
        assert (hub.data / "blobs" / part[0][:2] / part[0]).exists()
        # Not yet: nobody started an upload since. The next start sweeps.
        assert alice.head(f"/api/v1/uploads/{abandoned}").status_code == 200
        begin("next.bin")
        assert alice.head(f"/api/v1/uploads/{abandoned}").status_code == 404
        assert not (hub.data / "blobs" / part[0][:2] / part[0]).exists()
        assert alice.head(f"/api/v1/uploads/{active}").headers["upload-offset"] == "3"
        again = alice.post("/api/v1/uploads", json={"path": f"datasites/{A}/gone.bin", "size": 10})
        assert again.json()["offset"] == 0, "a new upload starts from nothing"
    finally:
        hub.stop()
