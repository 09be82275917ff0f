"""One inotify reader, many watchers: each file event reaches only the watchers of its
top-level folder, and each watcher's folder filter is asked once per folder, not once
per event (issue 20: with N virtual clients, every event used to ask all N)."""

from __future__ import annotations

import os
import queue
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from fedbox.store import LocalStore
from fedbox.store.inotify import InotifyRoot, inotify_available
from fedbox.testing import wait_reported

pytestmark = pytest.mark.skipif(not inotify_available(), reason="Linux inotify only")


def test_events_reach_only_the_watchers_of_their_folder(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s", watch_mode="events")
    names = [f"box-{i}" for i in range(5)]
    watchers = {n: store.watch("", (".request",), folders=lambda f, n=n: f == n) for n in names}
    try:
        for n in names:
            store.put(f"{n}/app/one.request", b"x")
        for n in names:
            seen = wait_reported(watchers[n], f"{n}/app/one.request", timeout=10)
            assert all(p.startswith(f"{n}/") for p in seen)
        watchers.pop("box-0").close()
        late = store.watch("", (".request",), folders=lambda f: f == "box-1")
        try:  # joins folders whose subscribers are already known
            store.put("box-1/app/two.request", b"x")
            wait_reported(late, "box-1/app/two.request", timeout=10)
            wait_reported(watchers["box-1"], "box-1/app/two.request", timeout=10)
        finally:
            late.close()
    finally:
        for w in watchers.values():
            w.close()


def test_a_folder_filter_is_asked_once_per_folder(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    asked: Counter[str] = Counter()
    got: queue.SimpleQueue[str] = queue.SimpleQueue()

    def top(name: str) -> bool:
        asked[name] += 1
        return name == "mine"

    others = [InotifyRoot.subscribe(root, lambda rel: None, top=lambda n: False) for _ in range(3)]
    unsubscribe = InotifyRoot.subscribe(root, got.put, top=top)
    try:
        (root / "mine").mkdir()
        (root / "theirs").mkdir()
        for i in range(20):
            (root / "mine" / f"{i}.request").write_bytes(b"x")
            (root / "theirs" / f"{i}.request").write_bytes(b"x")
        expected = {f"mine/{i}.request" for i in range(20)}
        received: set[str] = set()
        while received != expected:  # a file written as its new folder is scanned may
            received.add(got.get(timeout=10))  # be reported twice; never one of theirs
            assert received <= expected, received - expected
        assert asked == {"mine": 1, "theirs": 1}
    finally:
        unsubscribe()
        for other in others:
            other()


def _watched_inodes() -> set[int]:
    """The inodes this process's inotify instances watch, as the kernel lists them."""
    inodes: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        inodes |= {int(m, 16) for m in re.findall(r"^inotify wd:\S+ ino:([0-9a-f]+)", info, re.M)}
    return inodes


def test_a_folder_nobody_wants_is_not_watched_until_someone_does(tmp_path: Path) -> None:
    """The kernel is not asked to report what every subscriber would drop: a process's
    own outgoing files (issue 20). A subscriber that comes later for such a folder gets
    its files from then on."""
    root = tmp_path / "s"
    for folder in ("mine/deep", "theirs/deep"):
        (root / folder).mkdir(parents=True)
    got: queue.SimpleQueue[str] = queue.SimpleQueue()
    unsubscribe = InotifyRoot.subscribe(root, got.put, top=lambda n: n == "mine")
    late: Callable[[], None] | None = None
    try:
        watched = _watched_inodes()
        assert (root / "mine" / "deep").stat().st_ino in watched
        assert (root / "theirs").stat().st_ino not in watched
        assert (root / "theirs" / "deep").stat().st_ino not in watched
        (root / "new-theirs").mkdir()  # made later, wanted by nobody either
        (root / "mine" / "deep" / "1.request").write_bytes(b"x")
        assert got.get(timeout=10) == "mine/deep/1.request"
        assert (root / "new-theirs").stat().st_ino not in _watched_inodes()

        theirs: queue.SimpleQueue[str] = queue.SimpleQueue()
        late = InotifyRoot.subscribe(root, theirs.put, top=lambda n: n == "theirs")
        (root / "theirs" / "deep" / "2.request").write_bytes(b"x")
        assert theirs.get(timeout=10) == "theirs/deep/2.request"
        assert got.empty()
    finally:
        unsubscribe()
        if late is not None:
            late()
