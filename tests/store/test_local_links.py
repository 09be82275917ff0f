"""LocalStore never follows a link and never opens what is not a regular file (issue
11.3, 11.4), and a linked blob is a copy of its own (issue 11.11)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from fedbox.errors import CorruptMessage, NotFound, StoreError, UnsafeFile
from fedbox.store import LocalStore

INBOX = "syft_outbox_inbox_a@x.org_to_b@x.org/t/rpc/echo"


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "root", watch_mode="poll")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the root holding a file nobody in the store may reach."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(b"SECRET-BYTES")
    return folder


def _inbox(store: LocalStore) -> Path:
    folder = store.root / INBOX
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_fifo_is_refused_at_once_not_waited_on(store: LocalStore) -> None:
    fifo = _inbox(store) / "f.request"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def reader() -> None:
        try:
            store.read(f"{INBOX}/f.request")
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout=30)
    if t.is_alive():  # the old code: blocked in open(); release it before failing
        with open(fifo, "wb"):
            pass
        t.join(timeout=30)
        pytest.fail("opening a FIFO blocked until a writer came")
    (exc,) = outcome
    assert isinstance(exc, UnsafeFile) and "not a regular file" in str(exc)
    assert isinstance(exc, CorruptMessage) and isinstance(exc, StoreError)
    assert not store.exists(f"{INBOX}/f.request")


def test_a_fifo_can_be_quarantined_and_deleted(store: LocalStore) -> None:
    os.mkfifo(_inbox(store) / "f.request")
    assert [e.path for e in store.list(INBOX)] == [f"{INBOX}/f.request"], "listed, to be moved"
    store.move(f"{INBOX}/f.request", f"{INBOX}/.quarantine/f.request")
    assert (store.root / INBOX / ".quarantine" / "f.request").is_fifo()
    store.delete(f"{INBOX}/.quarantine/f.request")
    assert not (store.root / INBOX / ".quarantine" / "f.request").exists()


@pytest.mark.parametrize("target", ["outside", "/etc/passwd", "inside", "dangling"])
def test_a_symlinked_file_is_never_read(store: LocalStore, outside: Path, target: str) -> None:
    store.put("other/real.request", b"FBX1 inside the root")
    to = {
        "outside": outside / "secret.txt",
        "/etc/passwd": Path("/etc/passwd"),
        "inside": store.root / "other/real.request",
        "dangling": outside / "missing",
    }[target]
    (_inbox(store) / "l.request").symlink_to(to)
    with pytest.raises(UnsafeFile, match="symbolic link") as info:
        store.open(f"{INBOX}/l.request")
    assert not any(quoted in str(info.value) for quoted in ("SECRET", "root:")), "no contents"
    assert not store.exists(f"{INBOX}/l.request")
    with pytest.raises(UnsafeFile):
        store.link(f"{INBOX}/l.request", "copy/x")


def test_a_hard_link_to_a_file_outside_is_never_read(store: LocalStore, outside: Path) -> None:
    os.link(outside / "secret.txt", _inbox(store) / "h.request")
    with pytest.raises(UnsafeFile, match="2 hard links"):
        store.read(f"{INBOX}/h.request")


def test_no_operation_passes_through_a_symlinked_folder(store: LocalStore, outside: Path) -> None:
    """The outbox (or any folder on the way) replaced by a link to a folder outside."""
    (outside / "t" / "rpc" / "echo").mkdir(parents=True)
    (outside / "t" / "rpc" / "echo" / "old.response").write_bytes(b"outside")
    (store.root / "syft_outbox_inbox_b@x.org_to_a@x.org").symlink_to(outside)
    path = "syft_outbox_inbox_b@x.org_to_a@x.org/t/rpc/echo/old.response"
    new = "syft_outbox_inbox_b@x.org_to_a@x.org/t/rpc/echo/new.response"
    before = sorted(p.relative_to(outside) for p in outside.rglob("*"))
    with pytest.raises(UnsafeFile, match="symbolic link"):
        store.put(new, b"a response")
    with pytest.raises(UnsafeFile), store.writer(new) as f:
        f.write(b"a response")
    with pytest.raises(UnsafeFile):
        store.read(path)
    with pytest.raises(UnsafeFile):
        store.delete(path)
    with pytest.raises(UnsafeFile):
        store.move(path, "elsewhere/x.response")
    store.put("mine/x.request", b"x")
    with pytest.raises(UnsafeFile):
        store.move("mine/x.request", new)
    with pytest.raises(UnsafeFile):
        store.link("mine/x.request", new)
    assert not store.exists(path)
    assert store.list("syft_outbox_inbox_b@x.org_to_a@x.org") == []
    assert store.list_dirs() == ["mine"], "a linked folder is not a folder of the store"
    assert [e.path for e in store.list()] == ["mine/x.request"], "walks never descend into it"
    assert sorted(p.relative_to(outside) for p in outside.rglob("*")) == before
    assert (outside / "t" / "rpc" / "echo" / "old.response").read_bytes() == b"outside"


def test_quarantine_into_a_symlinked_folder_is_refused(store: LocalStore, outside: Path) -> None:
    (_inbox(store) / ".quarantine").symlink_to(outside)
    store.put(f"{INBOX}/bad.request", b"junk")
    with pytest.raises(UnsafeFile):
        store.move(f"{INBOX}/bad.request", f"{INBOX}/.quarantine/bad.request")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert store.read(f"{INBOX}/bad.request") == b"junk", "the file stays where it was"


def test_deleting_or_moving_a_link_acts_on_the_link_only(store: LocalStore, outside: Path) -> None:
    (_inbox(store) / "l.request").symlink_to(outside / "secret.txt")
    (_inbox(store) / "m.request").symlink_to(outside / "secret.txt")
    store.move(f"{INBOX}/m.request", f"{INBOX}/.quarantine/m.request")
    assert (store.root / INBOX / ".quarantine" / "m.request").is_symlink()
    store.delete(f"{INBOX}/l.request")
    assert not (store.root / INBOX / "l.request").is_symlink()
    assert (outside / "secret.txt").read_bytes() == b"SECRET-BYTES"


def test_a_file_replacing_a_folder_is_refused_clearly(store: LocalStore) -> None:
    store.put("a/file", b"x")
    with pytest.raises(UnsafeFile, match="not a folder"):
        store.put("a/file/child", b"y")
    with pytest.raises(NotFound):
        store.read("a/missing/child")


def test_a_linked_copy_is_a_file_of_its_own(store: LocalStore) -> None:
    store.put("a/blobs/x", b"the model" * 1000)
    store.link("a/blobs/x", "b/blobs/x")
    src, dst = store.root / "a/blobs/x", store.root / "b/blobs/x"
    assert src.stat().st_ino != dst.stat().st_ino
    assert src.stat().st_nlink == dst.stat().st_nlink == 1
    with open(dst, "r+b") as f:  # a co-recipient flips a byte of its own copy
        f.write(b"X")
    assert store.read("a/blobs/x") == b"the model" * 1000
    assert store.read("b/blobs/x") == b"X" + (b"the model" * 1000)[1:]
    store.link("a/blobs/x", "b/blobs/x")
    assert store.read("b/blobs/x") == b"the model" * 1000, "replaced whole"
    with pytest.raises(NotFound):
        store.link("a/blobs/none", "b/blobs/none")
    assert [e.path for e in store.list("b")] == ["b/blobs/x"], "no temp file left behind"


def test_remove_folder_removes_only_empty_real_folders(store: LocalStore, outside: Path) -> None:
    store.put("a/b/f.request", b"x")
    (store.root / "a" / "empty").mkdir()
    (store.root / "a" / "link").symlink_to(outside)
    assert not store.remove_folder("a/b"), "not empty"
    assert not store.remove_folder("a/link"), "a link, not a folder"
    assert not store.remove_folder("a/missing")
    assert store.remove_folder("a/empty")
    assert sorted(p.name for p in (store.root / "a").iterdir()) == ["b", "link"]
    assert outside.exists()
