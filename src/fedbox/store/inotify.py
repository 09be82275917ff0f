"""Linux inotify, directly: new files under a folder tree with sub-millisecond latency.

Why not only watchdog: its inotify backend holds rename events up to 0.5 s while it pairs
them (measured: p50 0.8 ms but a 500 ms tail), and every observer takes one of the 128
inotify instances a user may have, which a process hosting hundreds of virtual clients
exhausts. Here one inotify instance per root serves every subscriber in the process.

A subscriber may name the top-level folders it cares about (``top``); a file event then
reaches only the subscribers of its folder, found in a table built once per folder, so
a process hosting N virtual clients does not ask all N about every file (issue 20:
that fan-out was the largest cost of a round at 300 clients). A top-level folder no
subscriber cares about is not watched at all, so the kernel queues none of its events:
an aggregator's own requests and its clients' own responses, half of a round's events,
never reach the process that wrote them (issue 20 again, at 1,000 clients).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import select
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["InotifyRoot", "inotify_available"]

logger = logging.getLogger(__name__)

_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_ONLYDIR = 0x01000000
_IN_DONT_FOLLOW = 0x02000000
_IN_ISDIR = 0x40000000
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_GONE = _IN_DELETE | _IN_MOVED_FROM
_MASK = _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE_SELF | _IN_MOVE_SELF | _GONE
_WATCH = _MASK | _IN_ONLYDIR | _IN_DONT_FOLLOW
"""A link put where a folder was is never watched (issue 11.4)."""
_EVENT = struct.Struct("iIII")
_MAX_ROUTES = 65536
"""Top-level folders whose subscribers are remembered at once."""

_libc = None
if sys.platform.startswith("linux"):
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def inotify_available() -> bool:
    return _libc is not None and hasattr(_libc, "inotify_init1")


Subscriber = Callable[[str], None]
TopFilter = Callable[[str], bool]
"""Accepts the name of a top-level folder of the root."""


class InotifyRoot:
    """One inotify instance watching a whole tree, fanning file paths out to subscribers.

    Subscribers get store-relative POSIX paths of files that were renamed into place or
    closed after writing; subscribers that ask for removals also get the paths of files
    and folders deleted or renamed away (``fedbox sync`` mirrors those). Folders created
    later are watched as soon as they appear and scanned once, so files moved into a
    brand-new folder are not missed.
    """

    _lock = threading.Lock()
    _instances: dict[Path, InotifyRoot] = {}

    @classmethod
    def subscribe(
        cls,
        root: Path,
        callback: Subscriber,
        removed: Subscriber | None = None,
        top: TopFilter | None = None,
    ) -> Callable[[], None]:
        """Deliver new files under ``root`` to ``callback`` (only those inside a top-level
        folder that ``top`` accepts, when given) and removed paths to ``removed``;
        returns the unsubscribe function."""
        root = root.resolve()
        with cls._lock:
            inst = cls._instances.get(root)
            if inst is None:
                inst = cls(root)
                cls._instances[root] = inst
            inst._add_subscriber(callback, top)
            if removed is not None:
                inst._removal_subscribers.add(removed)

        def unsubscribe() -> None:
            with cls._lock:
                inst._remove_subscriber(callback)
                if removed is not None:
                    inst._removal_subscribers.discard(removed)
                if not inst._subscribers:
                    cls._instances.pop(root, None)
                    inst._stop()

        return unsubscribe

    def __init__(self, root: Path) -> None:
        if not inotify_available():
            raise OSError(errno.ENOSYS, "inotify is not available on this platform")
        assert _libc is not None
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self._fd = fd
        self._root = root
        self._subscribers: dict[Subscriber, TopFilter | None] = {}
        self._removal_subscribers: set[Subscriber] = set()
        self._routes: dict[str, tuple[Subscriber, ...]] = {}
        """Who gets the files of each top-level folder seen so far."""
        self._routes_lock = threading.Lock()
        self._dirs: dict[int, Path] = {}
        self._watch_lock = threading.RLock()
        self._tops: set[str] = set()
        """Top-level folders watched (with everything below them)."""
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._add_watch(root)
        self._thread = threading.Thread(target=self._run, name="fedbox-inotify", daemon=True)
        self._thread.start()

    def _add_watch(self, folder: Path) -> bool:
        assert _libc is not None
        wd = _libc.inotify_add_watch(
            self._fd, os.fsencode(folder), _MASK | _IN_ONLYDIR | _IN_DONT_FOLLOW
        )
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR):
                return False
            raise OSError(err, f"inotify_add_watch {folder}: {os.strerror(err)}")
        self._dirs[wd] = folder
        return True

    def _add_tree(self, top: Path, *, report: bool) -> None:
        """Watch ``top`` and every non-hidden folder below; report files already there
        when the folder is new (they may have landed before the watch existed).

        Each folder is watched *before* it is listed: listing first (as ``os.walk`` does)
        loses a subfolder created between the listing and the watch, with every file
        later written under it.
        """
        pending = [top]
        while pending:
            folder = pending.pop()
            if not self._add_watch(folder):
                continue
            try:
                with os.scandir(folder) as it:
                    entries = [e for e in it if not e.name.startswith(".")]
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif report and not entry.is_dir():  # links to folders are not followed
                    self._emit(Path(entry.path))

    def _emit(self, full: Path, subscribers: set[Subscriber] | None = None) -> None:
        try:
            rel = full.relative_to(self._root).as_posix()
        except ValueError:
            return
        targets = self._route(rel.partition("/")[0]) if subscribers is None else subscribers
        for callback in list(targets):
            try:
                callback(rel)
            except Exception:
                logger.exception("file event subscriber failed on %s", rel)

    def _add_subscriber(self, callback: Subscriber, top: TopFilter | None) -> None:
        with self._routes_lock:
            self._subscribers[callback] = top
            for name, route in self._routes.items():
                if top is None or top(name):
                    self._routes[name] = (*route, callback)
        self._watch_tops(report=False)

    def _watch_tops(self, *, report: bool) -> None:
        """Watch every top-level folder some subscriber wants and is not watched yet
        (``report``: say which files they hold, after a queue overflow)."""
        try:
            with os.scandir(self._root) as it:
                names = [e.name for e in it if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return
        for name in names:
            if not name.startswith(".") and (report or name not in self._tops):
                self._add_top(name, report=report)

    def _add_top(self, name: str, *, report: bool) -> None:
        """Watch the top-level folder ``name`` if some subscriber wants its files."""
        if not self._route(name):
            return
        with self._watch_lock:
            self._tops.add(name)
            self._add_tree(self._root / name, report=report)

    def _remove_subscriber(self, callback: Subscriber) -> None:
        with self._routes_lock:
            self._subscribers.pop(callback, None)
            for name, route in self._routes.items():
                if callback in route:
                    self._routes[name] = tuple(c for c in route if c is not callback)

    def _route(self, top: str) -> tuple[Subscriber, ...]:
        """The subscribers of files in the top-level folder ``top``."""
        with self._routes_lock:
            route = self._routes.get(top)
            if route is None:
                if len(self._routes) >= _MAX_ROUTES:  # a huge shared root: start afresh
                    self._routes.clear()
                route = tuple(
                    callback
                    for callback, accepts in self._subscribers.items()
                    if accepts is None or accepts(top)
                )
                self._routes[top] = route
            return route

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stopping:
            poller.poll()
            if self._stopping:
                break
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
            self._dispatch(data)
        os.close(self._fd)
        os.close(self._wake_r)

    def _dispatch(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
            offset += _EVENT.size + length
            if mask & _IN_Q_OVERFLOW:
                logger.warning("inotify queue overflowed under %s; rescanning", self._root)
                self._watch_tops(report=True)
                continue
            if mask & _IN_IGNORED:
                gone = self._dirs.pop(wd, None)
                if gone is not None and gone.parent == self._root:
                    self._tops.discard(gone.name)
                continue
            folder = self._dirs.get(wd)
            name = raw.rstrip(b"\0").decode(errors="surrogateescape")
            if folder is None or not name or name.startswith("."):
                continue
            path = folder / name
            if mask & _GONE:
                self._emit(path, self._removal_subscribers)
            elif mask & _IN_ISDIR:
                if mask & (_IN_CREATE | _IN_MOVED_TO):
                    if folder == self._root:
                        self._add_top(name, report=True)
                    else:
                        with self._watch_lock:
                            self._add_tree(path, report=True)
            elif mask & (_IN_MOVED_TO | _IN_CLOSE_WRITE):
                self._emit(path)

    def _stop(self) -> None:
        self._stopping = True
        # An event may wake the thread first: it then sees _stopping and closes its end.
        with contextlib.suppress(BrokenPipeError):
            os.write(self._wake_w, b"x")
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        os.close(self._wake_w)
