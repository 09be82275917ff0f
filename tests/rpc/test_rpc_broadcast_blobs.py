"""Broadcast bodies stored once per recipient (issues 6, 11.11): blobs written once and
copied in the kernel, digests, cleanup, remote copies."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from disk_usage import store_usage

import fedbox
from fedbox.datasite.workspace import Workspace
from fedbox.rpc import Body, Box, Request, Shared, cleanup, read_header
from fedbox.rpc.parts import MAGIC
from fedbox.store import RemoteStore

SENDER = "a@x.org"
NODES = [f"n{i}@x.org" for i in range(5)]
BODY = os.urandom(3 << 20)


def _blobs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*/blobs/*") if not p.name.startswith("."))


@contextmanager
def _servers(root: Path, encrypt: bool = False, **kw: object) -> Iterator[dict[str, int]]:
    """The five nodes in this process, answering ``digest`` with the body's SHA-256."""
    calls: dict[str, int] = {}
    lock = threading.Lock()
    boxes = [fedbox.connect(root, e, encrypt=encrypt, fsync=False, **kw) for e in NODES]
    try:
        for box in boxes:
            app = box.app("t")

            @app.on_request("digest")
            def digest(req: Request) -> bytes:
                with lock:
                    calls[req.recipient] = calls.get(req.recipient, 0) + 1
                return hashlib.sha256(req.body).hexdigest().encode()

            app.start()
        yield calls
    finally:
        for box in boxes:
            box.close()


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
def test_a_broadcast_to_five_writes_the_body_once(
    root: Path, encrypt: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Written once by the sender, then copied by the kernel (a reflink where the disk
    shares blocks): one copy per recipient, so none can change what another reads."""
    with (
        _servers(root, encrypt) as calls,
        fedbox.connect(root, SENDER, encrypt=encrypt, fsync=False) as a,
        caplog.at_level(logging.DEBUG, logger="fedbox.rpc.blobs"),
    ):
        before, _ = store_usage(root)
        futures = a.app("t").broadcast(NODES, "digest", BODY)
        written = store_usage(root)[0] - before
        answers = [f.wait(30) for f in futures]
    wrote = [r for r in caplog.records if r.getMessage().startswith("wrote blob")]
    assert len(wrote) == 1, "the body goes through the sender once"
    assert 5 * len(BODY) < written < 5 * len(BODY) + 64 * 1024, "one copy per recipient"
    assert {r.body for r in answers} == {hashlib.sha256(BODY).hexdigest().encode()}
    assert calls == dict.fromkeys(NODES, 1)
    blobs = _blobs(root)
    assert len(blobs) == 5 and len({p.stat().st_ino for p in blobs}) == 5
    assert all(p.stat().st_nlink == 1 for p in blobs)
    assert len({p.read_bytes() for p in blobs}) == 1
    for fut, node in zip(futures, NODES, strict=True):
        (path,) = root.rglob(f"{fut.id}.request")
        with open(path, "rb") as f:
            header = read_header(f)
            assert f.read() == b"", "the request file holds its own header only"
        assert header.body_ref == header.body_sha256 == blobs[0].name
        assert (header.enc is not None) == encrypt
        assert path.parts[-5] == f"syft_outbox_inbox_{SENDER}_to_{node}"


def test_a_damaged_blob_is_refused_and_quarantined(root: Path) -> None:
    with fedbox.connect(root, SENDER, encrypt=False, fsync=False) as a:
        futures = a.app("t").broadcast(NODES[:2], "digest", BODY)  # nobody is serving yet
        blob = _blobs(root)[0]
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        os.unlink(blob)  # the other node's copy keeps the good bytes
        blob.write_bytes(data)
        with fedbox.connect(root, NODES[0], encrypt=False, fsync=False) as node0:
            served = node0.app("t")
            ran: list[str] = []
            served.on_request("digest")(lambda req: ran.append(req.id))
            served.start()
            response = futures[0].wait(30)
    assert response.status == 400 and "body blob" in response.text, response.text
    assert ran == []
    assert list(root.rglob(f".quarantine/{futures[0].id}.request"))


def test_cleanup_removes_blobs_with_their_messages(root: Path) -> None:
    with _servers(root) as _calls, fedbox.connect(root, SENDER, encrypt=False, fsync=False) as a:
        for f in a.app("t").broadcast(NODES, "digest", BODY):
            f.wait(30)
        assert len(_blobs(root)) == 5
        now = a.clock()
        assert cleanup(a.store, SENDER, older_than=3600, now=now).files == 0
        assert len(_blobs(root)) == 5, "blobs of messages that stay are kept"
        report = cleanup(a.store, SENDER, older_than=60, now=now + 10 * 3600)
    assert _blobs(root) == [] and not list(root.rglob("*.request"))
    assert report.files == 10  # 5 requests, 5 blob copies


def test_a_body_that_starts_like_a_parts_table_round_trips(root: Path) -> None:
    tricky = MAGIC + b"\x01\x00\x00\x00" + os.urandom(100)
    with _servers(root) as _calls, fedbox.connect(root, SENDER, encrypt=False, fsync=False) as a:
        app = a.app("t")
        one = app.send(NODES[0], "digest", tricky).wait(30)
        body = Body([tricky[:3], Shared([tricky[3:]])])
        batch = app.batch()
        two = [app.send(n, "digest", body, batch=batch).wait(30) for n in NODES[:2]]
    expected = hashlib.sha256(tricky).hexdigest().encode()
    assert one.body == expected and {r.body for r in two} == {expected}


def test_a_remote_store_uploads_a_broadcast_body_once(tmp_path: Path) -> None:
    """memory:// stands in for an object store: one upload, then server-side copies."""
    first = RemoteStore("memory://bucket/root", min_poll_interval=0.02, max_poll_interval=0.2)
    uploads: list[str] = []
    copies: list[str] = []
    backend = first.backend
    upload, copy = backend.upload, backend.copy

    def counting_upload(fs: object, path: str, data: bytes) -> None:
        uploads.append(path)
        upload(fs, path, data)

    def counting_copy(fs: object, src: str, dst: str) -> None:
        copies.append(dst)
        copy(fs, src, dst)

    backend.upload = counting_upload  # type: ignore[method-assign]
    backend.copy = counting_copy  # type: ignore[method-assign]

    def store() -> RemoteStore:
        return RemoteStore(
            "memory://bucket/root", fs=first.fs, min_poll_interval=0.02, max_poll_interval=0.2
        )

    nodes = [Box(store(), Workspace.for_email(e, tmp_path / e)) for e in NODES[:3]]
    try:
        for box in nodes:
            app = box.app("t")
            app.on_request("digest")(lambda req: hashlib.sha256(req.body).hexdigest().encode())
            app.start()
        with Box(first, Workspace.for_email(SENDER, tmp_path / SENDER)) as a:
            futures = a.app("t").broadcast(NODES[:3], "digest", BODY)
            answers = [f.wait(30).body for f in futures]
    finally:
        for box in nodes:
            box.close()
    assert answers == [hashlib.sha256(BODY).hexdigest().encode()] * 3
    assert len([u for u in uploads if "/blobs/" in u]) == 1
    assert len([c for c in copies if "/blobs/" in c]) == 2


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_chunk_is_refused_while_the_handler_reads(
    root: Path, encrypt: bool, damage: str
) -> None:
    """A stream handler meets the bad chunk mid-body: the request is answered 400 and
    quarantined, and what the handler read is never acted upon."""
    chunked = {"chunk_threshold": 1 << 18, "chunk_size": 1 << 16, "fsync": False}
    body = os.urandom(1 << 20)
    with fedbox.connect(root, SENDER, encrypt=encrypt, **chunked) as a:  # type: ignore[arg-type]
        if encrypt:  # the node's keys must exist before anything is encrypted for it
            fedbox.connect(root, NODES[0], encrypt=True).close()
        fut = a.app("t").send(NODES[0], "digest", Body([body]))
        chunk = _blobs(root)[7]
        data = bytearray(chunk.read_bytes())
        if damage == "flip":
            data[100] ^= 1
        else:
            del data[-10:]
        chunk.write_bytes(data)
        seen: list[bytes] = []
        with fedbox.connect(root, NODES[0], encrypt=encrypt, **chunked) as node:  # type: ignore[arg-type]
            app = node.app("t")

            @app.on_request("digest", stream=True)
            def digest(req: Request) -> bytes:
                assert req.payload is not None
                seen.append(req.payload.read())
                return b"acted on it"

            app.start()
            response = fut.wait(30)
    assert response.status == 400 and "blob" in response.text, response.text
    assert seen == []
    assert list(root.rglob(f".quarantine/{fut.id}.request"))
