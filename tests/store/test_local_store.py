"""LocalStore: atomic writes, listing, and both change-detection modes."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from fedbox.errors import InvalidIdentity, NotFound
from fedbox.store import LocalStore
from fedbox.testing import wait_reported


@pytest.fixture(params=["events", "poll"])
def store(request, tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "s", watch_mode=request.param, poll_interval=0.05)


def test_put_read_list_delete(store: LocalStore) -> None:
    store.put("a/b/one.request", b"1")
    store.put("a/two.response", io.BytesIO(b"22"))
    store.put("a/.hidden.request", b"x")
    assert store.read("a/b/one.request") == b"1"
    assert sorted(e.path for e in store.list("a")) == ["a/b/one.request", "a/two.response"]
    assert [e.path for e in store.list("", ".response")] == ["a/two.response"]
    assert store.list_dirs() == ["a"]
    store.delete("a/b/one.request")
    assert not store.exists("a/b/one.request")
    with pytest.raises(NotFound):
        store.read("a/b/one.request")
    with pytest.raises(FileNotFoundError):
        store.delete("a/b/one.request")


def test_failed_write_leaves_nothing(store: LocalStore) -> None:
    with pytest.raises(RuntimeError), store.writer("x/f.request") as f:
        f.write(b"partial")
        raise RuntimeError("writer died")
    assert not store.exists("x/f.request")
    assert os.listdir(store.root / "x") == []


@pytest.mark.parametrize("path", ["../escape", "/abs", "a/../../b", "nul\x00"])
def test_paths_cannot_leave_the_root(store: LocalStore, path: str) -> None:
    with pytest.raises(InvalidIdentity):
        store.put(path, b"x")


def test_watch_reports_new_files_in_new_folders_only_once_complete(store: LocalStore) -> None:
    store.put("old/existing.request", b"x")
    with store.watch("", (".request",)) as watcher:
        store.put("deep/new/folder/f1.request", b"1" * 100_000)
        store.put("deep/new/other.txt", b"ignored suffix")
        seen = wait_reported(watcher, "deep/new/folder/f1.request", timeout=10)
        assert "old/existing.request" not in seen
        assert not any(p.endswith(".txt") or "/." in p for p in seen)
        assert store.read("deep/new/folder/f1.request") == b"1" * 100_000


def test_watch_times_out_empty(store: LocalStore) -> None:
    with store.watch() as watcher:
        assert watcher.next_batch(timeout=0.2) == set()


def test_closing_a_watcher_ends_iteration(store: LocalStore) -> None:
    watcher = store.watch()
    batches: list[set[str]] = []
    t = threading.Thread(target=lambda: batches.extend(watcher))
    t.start()
    store.put("a.request", b"x")
    watcher.close()
    t.join(timeout=10)
    assert not t.is_alive()


def test_invalid_watch_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="watch_mode"):
        LocalStore(tmp_path, watch_mode="magic")  # type: ignore[arg-type]
