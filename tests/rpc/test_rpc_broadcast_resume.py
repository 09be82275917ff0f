"""Resumable chunked transfers (issue 6): after an interruption, a resend writes only the
chunks that are missing; those already at the recipient keep their inode and mtime."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import fedbox
from fedbox.errors import StoreError
from fedbox.rpc import Body, Box, Request, cleanup
from fedbox.store import RemoteStore

SENDER, NODE = "a@x.org", "b@x.org"
THRESHOLD, CHUNK = 256 << 10, 64 << 10
PAYLOAD = os.urandom(1 << 20)  # 16 chunks
CHUNKED = {"chunk_threshold": THRESHOLD, "chunk_size": CHUNK, "fsync": False}


def _chunks(root: Path) -> dict[str, tuple[int, int]]:
    """Chunk name -> (inode, mtime_ns) of the sender's blobs for the node."""
    folder = root / f"syft_outbox_inbox_{SENDER}_to_{NODE}" / "t" / "blobs"
    if not folder.exists():
        return {}
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in folder.iterdir()
        if not p.name.startswith(".")
    }


@contextmanager
def _node(root: Path, encrypt: bool) -> Iterator[list[str]]:
    handled: list[str] = []
    with fedbox.connect(root, NODE, encrypt=encrypt, **CHUNKED) as box:  # type: ignore[arg-type]
        app = box.app("t")

        @app.on_request("digest")
        def digest(req: Request) -> bytes:
            handled.append(req.id)
            return hashlib.sha256(req.body).hexdigest().encode()

        app.start()
        yield handled


def _interrupt_after(box: Box, blobs: int) -> None:
    """Make the box's store fail while writing its ``blobs + 1``-th blob."""
    store = box.store
    real = store.writer
    count = itertools.count(1)

    @contextmanager
    def flaky(path: str) -> Iterator[object]:
        with real(path) as f:
            yield f
            if "/blobs/" in path and next(count) > blobs:
                raise OSError("disk unplugged while writing a chunk")

    store.writer = flaky  # type: ignore[method-assign]


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
def test_an_interrupted_chunked_send_resumes_without_rewriting_chunks(
    root: Path, encrypt: bool
) -> None:
    with _node(root, encrypt) as handled:
        with fedbox.connect(root, SENDER, encrypt=encrypt, **CHUNKED) as a:  # type: ignore[arg-type]
            _interrupt_after(a, 5)
            with pytest.raises(StoreError, match="unplugged"):  # issue 11.15
                a.app("t").send(NODE, "digest", Body([PAYLOAD]))
        written = _chunks(root)
        assert len(written) == 5
        assert not list(root.rglob("*.request")), "no request without all its chunks"
        with fedbox.connect(root, SENDER, encrypt=encrypt, **CHUNKED) as a:  # type: ignore[arg-type]
            batch = a.app("t").batch()
            response = a.app("t").send(NODE, "digest", Body([PAYLOAD]), batch=batch).wait(30)
            stats = batch.blobs.stats
    assert response.body == hashlib.sha256(PAYLOAD).hexdigest().encode()
    assert len(handled) == 1
    after = _chunks(root)
    assert len(after) == 16
    assert {name: after[name] for name in written} == written, "chunks were rewritten"
    assert (stats.reused, stats.written) == (5, 11)


def test_a_killed_sender_resumes_where_it_stopped(root: Path, tmp_path: Path) -> None:
    """The process dies (no cleanup at all) in the middle of its sixth chunk."""
    data = tmp_path / "payload.bin"
    data.write_bytes(PAYLOAD)
    script = textwrap.dedent(
        f"""
        import itertools, os
        from contextlib import contextmanager
        import fedbox
        from fedbox.rpc import Body
        box = fedbox.connect({str(root)!r}, {SENDER!r}, encrypt=False, **{CHUNKED!r})
        real, count = box.store.writer, itertools.count(1)

        @contextmanager
        def dying(path):
            with real(path) as f:
                if "/blobs/" in path and next(count) > 5:
                    f.write(b"half a chunk")
                    f.flush()
                    os._exit(9)
                yield f

        box.store.writer = dying
        with open({str(data)!r}, "rb") as f:
            box.app("t").send({NODE!r}, "digest", Body([f.read()]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), timeout=60)
    assert proc.returncode == 9
    written = _chunks(root)
    assert len(written) == 5
    with _node(root, False) as handled, fedbox.connect(root, SENDER, encrypt=False, **CHUNKED) as a:  # type: ignore[arg-type]
        response = a.app("t").send(NODE, "digest", Body([PAYLOAD])).wait(30)
    assert response.body == hashlib.sha256(PAYLOAD).hexdigest().encode()
    assert len(handled) == 1
    after = _chunks(root)
    assert len(after) == 16 and {n: after[n] for n in written} == written


def test_a_truncated_chunk_is_written_again_not_reused(root: Path) -> None:
    with _node(root, False) as handled, fedbox.connect(root, SENDER, encrypt=False, **CHUNKED) as a:  # type: ignore[arg-type]
        first = a.app("t").send(NODE, "digest", Body([PAYLOAD])).wait(30)
        folder = root / f"syft_outbox_inbox_{SENDER}_to_{NODE}" / "t" / "blobs"
        victim = sorted(p for p in folder.iterdir() if not p.name.startswith("."))[3]
        os.truncate(victim, CHUNK // 2)
        batch = a.app("t").batch()
        again = a.app("t").send(NODE, "digest", Body([PAYLOAD]), batch=batch).wait(30)
        stats = batch.blobs.stats
    expected = hashlib.sha256(PAYLOAD).hexdigest().encode()
    assert first.body == again.body == expected
    assert len(handled) == 2
    assert (stats.reused, stats.written) == (15, 1)
    assert victim.stat().st_size == CHUNK


def test_cleanup_removes_what_a_killed_writer_left_once_it_is_old(
    root: Path, tmp_path: Path
) -> None:
    test_a_killed_sender_resumes_where_it_stopped(root, tmp_path)
    folder = root / f"syft_outbox_inbox_{SENDER}_to_{NODE}" / "t" / "blobs"
    left = [p for p in folder.iterdir() if p.name.startswith(".") and ".tmp-" in p.name]
    assert len(left) == 1 and left[0].read_bytes() == b"half a chunk"
    with fedbox.connect(root, SENDER, encrypt=False, **CHUNKED) as a:  # type: ignore[arg-type]
        now = a.clock()
        cleanup(a.store, SENDER, older_than=60, now=now + 1800)  # messages and blobs go
        assert left[0].exists(), "a temp file younger than an hour may still be written to"
        report = cleanup(a.store, SENDER, older_than=60, now=now + 2 * 3600)
    assert not left[0].exists()
    assert report.bytes >= len(b"half a chunk")


def test_remote_stores_list_and_clean_temp_files_too() -> None:
    store = RemoteStore("memory://cleanup-temps")
    outbox = f"syft_outbox_inbox_{SENDER}_to_{NODE}/t"
    store.put(f"{outbox}/rpc/e/1.request", b"kept")
    store.fs.pipe_file(f"{store.root}/{outbox}/blobs/.abc.tmp-0123456789ab", b"partial")
    store.fs.pipe_file(f"{store.root}/{outbox}/.quarantine/.x.tmp-0123456789ab", b"not ours")
    assert [e.path for e in store.list_temps()] == [f"{outbox}/blobs/.abc.tmp-0123456789ab"]
    assert [e.path for e in store.list(outbox)] == [f"{outbox}/rpc/e/1.request"]
    report = cleanup(store, SENDER, older_than=3600 * 24, now=time.time() + 3600 * 2)
    assert report.files == 0, "younger than the cleanup age: kept"
    report = cleanup(store, SENDER, older_than=60, now=time.time() + 3600 * 2)
    assert report.files == 2 and store.list_temps() == []  # the message and the temp file
    assert store.fs.exists(f"{store.root}/{outbox}/.quarantine/.x.tmp-0123456789ab")
