"""What every Store must do, whatever carries the files (fsspec's abstract tests, trio's
``check_one_way_stream``): run :func:`check_store` on a new backend to prove it."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from types import MappingProxyType

from fedbox.errors import InvalidIdentity, NotFound
from fedbox.store import Store, Watcher

__all__ = ["BAD_PATHS", "STORE_CHECKS", "StoreCheck", "check_store", "wait_reported"]

StoreCheck = Callable[[Store], None]
"""One behaviour, checked on an empty store; raises AssertionError if it does not hold."""

BAD_PATHS = ("../escape", "/abs", "a/../../b", "nul\x00", "back\\slash")
"""Paths every store refuses with InvalidIdentity."""


def check_store(make_store: Callable[[], Store], *, only: Iterable[str] | None = None) -> None:
    """Run the checks of :data:`STORE_CHECKS` (or those named in ``only``), each on a
    new, empty store from ``make_store()``, closed afterwards.

    Raises AssertionError naming the first check that fails, whether an expectation
    did not hold or the store raised (the store's error is the cause). Watch checks wait
    up to 15 s for an event, so a polling store passes with any sane interval.
    """
    for name in STORE_CHECKS if only is None else only:
        check = STORE_CHECKS[name]
        store = make_store()
        try:
            check(store)
        except Exception as exc:
            raise AssertionError(f"store check {name!r} failed on {store!r}: {exc!r}") from exc
        finally:
            store.close()


def _raises(expected: type[BaseException], action: Callable[[], object], what: str) -> None:
    try:
        action()
    except expected:
        return
    raise AssertionError(f"{what} did not raise {expected.__name__}")


def wait_reported(watcher: Watcher, wanted: str, timeout: float = 15) -> set[str]:
    """Every path ``watcher`` reports until ``wanted`` is among them: a polling watcher
    may report it in any batch, with others. AssertionError after ``timeout`` seconds."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{wanted} not reported within {timeout} s (saw {seen})"
        seen |= watcher.next_batch(timeout=remaining)
    return seen


def put_read_open_exists(store: Store) -> None:
    store.put("a/b/one.request", b"1")
    store.put("a/two.response", io.BytesIO(b"22"))
    assert store.read("a/b/one.request") == b"1"
    with store.open("a/two.response") as f:
        assert f.read() == b"22"
    assert store.exists("a/b/one.request")
    assert not store.exists("a/b/none.request")
    assert not store.exists("a/b"), "a folder is not a file"


def put_overwrites_whole(store: Store) -> None:
    store.put("x/f.request", b"first version, longer")
    store.put("x/f.request", b"second")
    assert store.read("x/f.request") == b"second"


def large_stream_round_trips(store: Store) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    store.put("big/blob.request", io.BytesIO(payload))
    assert store.read("big/blob.request") == payload


def list_is_recursive_filtered_and_hides_dot_files(store: Store) -> None:
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


def entries_carry_a_plausible_mtime(store: Store) -> None:
    store.put("m/f.request", b"x")
    (entry,) = store.list("m")
    assert abs(entry.mtime - time.time()) < 3600, entry


def list_dirs(store: Store) -> None:
    store.put("a/x.request", b"1")
    store.put("b/c/y.request", b"1")
    store.put(".hidden/z.request", b"1")
    store.put("top.request", b"1")
    assert store.list_dirs() == ["a", "b"]
    assert store.list_dirs("b") == ["c"]
    assert store.list_dirs("missing") == []


def delete(store: Store) -> None:
    store.put("a/b/one.request", b"1")
    store.delete("a/b/one.request")
    assert not store.exists("a/b/one.request")
    _raises(NotFound, lambda: store.read("a/b/one.request"), "reading a deleted file")
    _raises(FileNotFoundError, lambda: store.delete("a/b/one.request"), "deleting it again")


def move_into_a_new_hidden_folder(store: Store) -> None:
    store.put("a/b/bad.request", b"junk")
    store.move("a/b/bad.request", "a/b/.quarantine/bad.request")
    assert not store.exists("a/b/bad.request")
    assert store.read("a/b/.quarantine/bad.request") == b"junk"
    assert store.list("a") == []
    _raises(
        NotFound,
        lambda: store.move("a/b/bad.request", "a/b/elsewhere.request"),
        "moving a missing file",
    )


def writer_commits_only_on_clean_exit(store: Store) -> None:
    with store.writer("w/f.request") as f:
        f.write(b"head")
        f.seek(0)
        f.write(b"HEAD")
        f.seek(0, io.SEEK_END)
        f.write(b"-tail")
        assert not store.exists("w/f.request"), "visible before the writer exits"
        assert store.list("w") == []
    assert store.read("w/f.request") == b"HEAD-tail"

    def die_mid_write() -> None:
        with store.writer("w/g.request") as g:
            g.write(b"partial")
            raise RuntimeError("writer died")

    _raises(RuntimeError, die_mid_write, "a writer whose block raised")
    assert not store.exists("w/g.request"), "a failed write became visible"
    assert [e.path for e in store.list("w")] == ["w/f.request"]


def readers_never_see_a_partial_file(store: Store) -> None:
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
    assert bad == [], f"partial files seen: {bad}"


def path_tricks_are_refused(store: Store) -> None:
    for path in BAD_PATHS:
        _raises(InvalidIdentity, partial(store.put, path, b"x"), f"put({path!r})")
        _raises(InvalidIdentity, partial(store.read, path), f"read({path!r})")
        _raises(InvalidIdentity, partial(store.list, path), f"list({path!r})")


def watch_reports_new_files_only(store: Store) -> None:
    store.put("old/existing.request", b"x")
    with store.watch("", (".request",)) as watcher:
        store.put("deep/new/folder/f1.request", b"1" * 10_000)
        store.put("deep/new/other.txt", b"ignored suffix")
        store.put("deep/new/.f2.request", b"hidden")
        seen = wait_reported(watcher, "deep/new/folder/f1.request")
        assert "old/existing.request" not in seen
        assert not any(p.endswith(".txt") or "/." in p for p in seen), seen
        assert store.read("deep/new/folder/f1.request") == b"1" * 10_000


def watch_only_looks_into_accepted_folders(store: Store) -> None:
    with store.watch("", (".request",), folders=lambda name: name.endswith("_to_me")) as w:
        store.put("from_a_to_other/x/1.request", b"1")
        store.put("from_a_to_me/x/2.request", b"2")
        seen = wait_reported(w, "from_a_to_me/x/2.request")
        store.put("from_b_to_me/y/3.request", b"3")
        seen |= wait_reported(w, "from_b_to_me/y/3.request")
        assert not any(p.startswith("from_a_to_other") for p in seen), seen
    with store.watch("from_a_to_me", folders="x*") as w:
        store.put("from_a_to_me/y/4.request", b"4")
        store.put("from_a_to_me/x/5.request", b"5")
        seen = wait_reported(w, "from_a_to_me/x/5.request")
        assert "from_a_to_me/y/4.request" not in seen, seen


def watch_times_out_empty(store: Store) -> None:
    with store.watch() as watcher:
        assert watcher.next_batch(timeout=0.2) == set()


def closing_a_watcher_ends_iteration(store: Store) -> None:
    watcher = store.watch()
    t = threading.Thread(target=lambda: list(watcher))
    t.start()
    store.put("a.request", b"x")
    watcher.close()
    t.join(timeout=10)
    assert not t.is_alive(), "iteration went on after close()"


STORE_CHECKS: Mapping[str, StoreCheck] = MappingProxyType(
    {
        check.__name__: check
        for check in (
            put_read_open_exists,
            put_overwrites_whole,
            large_stream_round_trips,
            list_is_recursive_filtered_and_hides_dot_files,
            entries_carry_a_plausible_mtime,
            list_dirs,
            delete,
            move_into_a_new_hidden_folder,
            writer_commits_only_on_clean_exit,
            readers_never_see_a_partial_file,
            path_tricks_are_refused,
            watch_reports_new_files_only,
            watch_only_looks_into_accepted_folders,
            watch_times_out_empty,
            closing_a_watcher_ends_iteration,
        )
    }
)
"""Every check by name, in a stable order (a test can parametrize over the names)."""
