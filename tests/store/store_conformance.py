"""What every Store must do, whatever carries the files (fsspec's abstract tests, trio's
``check_one_way_stream``). Subclass :class:`StoreConformance` in a test module and give
it a ``store`` fixture; every test starts from an empty store.
"""

from __future__ import annotations

import io
import threading
import time

import pytest

from fedbox.errors import InvalidIdentity, NotFound
from fedbox.store import Store

BAD_PATHS = ["../escape", "/abs", "a/../../b", "nul\x00", "back\\slash"]


def _wait_for(watcher, wanted: str, timeout: float = 15) -> set[str]:
    """Batches until ``wanted`` shows up; fails after ``timeout`` seconds."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{wanted} not reported within {timeout} s (saw {seen})"
        seen |= watcher.next_batch(timeout=remaining)
    return seen


class StoreConformance:
    """The shared suite. ``store`` is an empty Store."""

    def test_put_read_open_exists(self, store: Store) -> None:
        store.put("a/b/one.request", b"1")
        store.put("a/two.response", io.BytesIO(b"22"))
        assert store.read("a/b/one.request") == b"1"
        with store.open("a/two.response") as f:
            assert f.read() == b"22"
        assert store.exists("a/b/one.request")
        assert not store.exists("a/b/none.request")
        assert not store.exists("a/b")  # a folder is not a file

    def test_put_overwrites_whole(self, store: Store) -> None:
        store.put("x/f.request", b"first version, longer")
        store.put("x/f.request", b"second")
        assert store.read("x/f.request") == b"second"

    def test_large_stream_round_trips(self, store: Store) -> None:
        payload = bytes(range(256)) * 4096  # 1 MiB
        store.put("big/blob.request", io.BytesIO(payload))
        assert store.read("big/blob.request") == payload

    def test_list_is_recursive_filtered_and_hides_dot_files(self, store: Store) -> None:
        store.put("a/b/one.request", b"1")
        store.put("a/two.response", b"22")
        store.put("a/.hidden.request", b"x")
        store.put("a/.quarantine/q.request", b"x")
        store.put("c/d/e/deep.request", b"333")
        assert sorted(e.path for e in store.list("a")) == ["a/b/one.request", "a/two.response"]
        assert sorted(e.path for e in store.list("", ".request")) == [
            "a/b/one.request",
            "c/d/e/deep.request",
        ]
        assert store.list("nothing/here") == []
        sizes = {e.path: e.size for e in store.list()}
        assert sizes == {"a/b/one.request": 1, "a/two.response": 2, "c/d/e/deep.request": 3}

    def test_entries_carry_a_plausible_mtime(self, store: Store) -> None:
        store.put("m/f.request", b"x")
        (entry,) = store.list("m")
        assert abs(entry.mtime - time.time()) < 3600

    def test_list_dirs(self, store: Store) -> None:
        store.put("a/x.request", b"1")
        store.put("b/c/y.request", b"1")
        store.put(".hidden/z.request", b"1")
        store.put("top.request", b"1")
        assert store.list_dirs() == ["a", "b"]
        assert store.list_dirs("b") == ["c"]
        assert store.list_dirs("missing") == []

    def test_delete(self, store: Store) -> None:
        store.put("a/b/one.request", b"1")
        store.delete("a/b/one.request")
        assert not store.exists("a/b/one.request")
        with pytest.raises(NotFound):
            store.read("a/b/one.request")
        with pytest.raises(FileNotFoundError):
            store.delete("a/b/one.request")

    def test_move_into_a_new_hidden_folder(self, store: Store) -> None:
        store.put("a/b/bad.request", b"junk")
        store.move("a/b/bad.request", "a/b/.quarantine/bad.request")
        assert not store.exists("a/b/bad.request")
        assert store.read("a/b/.quarantine/bad.request") == b"junk"
        assert store.list("a") == []
        with pytest.raises(NotFound):
            store.move("a/b/bad.request", "a/b/elsewhere.request")

    def test_writer_commits_only_on_clean_exit(self, store: Store) -> None:
        with store.writer("w/f.request") as f:
            f.write(b"head")
            f.seek(0)
            f.write(b"HEAD")
            f.seek(0, io.SEEK_END)
            f.write(b"-tail")
            assert not store.exists("w/f.request")
            assert store.list("w") == []
        assert store.read("w/f.request") == b"HEAD-tail"
        with pytest.raises(RuntimeError), store.writer("w/g.request") as f:
            f.write(b"partial")
            raise RuntimeError("writer died")
        assert not store.exists("w/g.request")
        assert [e.path for e in store.list("w")] == ["w/f.request"]

    def test_readers_never_see_a_partial_file(self, store: Store) -> None:
        payload = b"z" * 1_000_000
        stop = threading.Event()
        bad: list[int] = []

        def reader() -> None:
            while not stop.is_set():
                for entry in store.list("p"):
                    try:
                        size = len(store.read(entry.path))
                    except NotFound:
                        continue
                    if size != len(payload):
                        bad.append(size)

        t = threading.Thread(target=reader)
        t.start()
        try:
            for i in range(5):
                store.put(f"p/f{i}.request", payload)
        finally:
            stop.set()
            t.join(timeout=30)
        assert bad == []

    @pytest.mark.parametrize("path", BAD_PATHS)
    def test_path_tricks_are_refused(self, store: Store, path: str) -> None:
        with pytest.raises(InvalidIdentity):
            store.put(path, b"x")
        with pytest.raises(InvalidIdentity):
            store.read(path)
        with pytest.raises(InvalidIdentity):
            store.list(path)

    def test_watch_reports_new_files_only(self, store: Store) -> None:
        store.put("old/existing.request", b"x")
        with store.watch("", (".request",)) as watcher:
            store.put("deep/new/folder/f1.request", b"1" * 10_000)
            store.put("deep/new/other.txt", b"ignored suffix")
            store.put("deep/new/.f2.request", b"hidden")
            seen = _wait_for(watcher, "deep/new/folder/f1.request")
            assert "old/existing.request" not in seen
            assert not any(p.endswith(".txt") or "/." in p for p in seen)
            assert store.read("deep/new/folder/f1.request") == b"1" * 10_000

    def test_watch_only_looks_into_accepted_folders(self, store: Store) -> None:
        with store.watch("", (".request",), folders=lambda name: name.endswith("_to_me")) as w:
            store.put("from_a_to_other/x/1.request", b"1")
            store.put("from_a_to_me/x/2.request", b"2")
            seen = _wait_for(w, "from_a_to_me/x/2.request")
            store.put("from_b_to_me/y/3.request", b"3")
            seen |= _wait_for(w, "from_b_to_me/y/3.request")
            assert not any(p.startswith("from_a_to_other") for p in seen)
        with store.watch("from_a_to_me", folders="x*") as w:
            store.put("from_a_to_me/y/4.request", b"4")
            store.put("from_a_to_me/x/5.request", b"5")
            seen = _wait_for(w, "from_a_to_me/x/5.request")
            assert "from_a_to_me/y/4.request" not in seen

    def test_watch_times_out_empty(self, store: Store) -> None:
        with store.watch() as watcher:
            assert watcher.next_batch(timeout=0.2) == set()

    def test_closing_a_watcher_ends_iteration(self, store: Store) -> None:
        watcher = store.watch()
        t = threading.Thread(target=lambda: list(watcher))
        t.start()
        store.put("a.request", b"x")
        watcher.close()
        t.join(timeout=10)
        assert not t.is_alive()
