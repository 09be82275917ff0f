"""Renames travel as renames: one hub move for a local rename, one local rename for a
move on the hub, instead of a delete plus a new file's bytes both ways.

The OS reports a rename as a file gone and a file come (inotify's pair of events, or a
folder gone and the files of a folder come). A path that goes away is remembered for
:data:`WINDOW` seconds with the size and mtime the journal holds for it; a new path that
comes meanwhile with the same size and mtime (a rename keeps both) is paired with it.
The destination's worker then settles both paths, and checks the bytes' hash before it
moves anything; the source's worker leaves a paired source alone, and holds back the hub
delete of a path that went away less than :data:`WINDOW` ago, so a pair can still form.
A move from the hub's feed is paired the same way, from its ``old_path``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from fedbox.hub.sync.emptied import in_folder_of
from fedbox.hub.sync.journal import Synced
from fedbox.hub.sync.reconcile import LocalFile

__all__ = ["WINDOW", "Renames", "rename_local"]

WINDOW = 1.0
"""Seconds a path that went away waits for the path it may have been renamed to: what a
local delete's upload waits. The OS reports both halves of a rename at once, but on a
busy machine the watcher thread may not get to the second for a while: at 0.3 s a
rename became a delete and a new file several times in five at a load of 5."""


class Renames:
    """Paths that went away lately, and the (source, destination) pairs they formed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gone: dict[str, tuple[int, int, float]] = {}
        """path -> (size, mtime_ns, when it went) as the journal last knew it."""
        self._by_stat: dict[tuple[int, int], list[str]] = {}
        self._source_of: dict[str, str] = {}
        self._sources: set[str] = set()
        self._held: set[str] = set()
        """Paths whose window a worker started before the watcher reported them gone."""

    def went(self, rel: str, base: Synced) -> None:
        """``rel`` went away; the journal held ``base`` for it."""
        with self._lock:
            self._expire(time.monotonic())
            self._note(rel, base)

    def _note(self, rel: str, base: Synced) -> None:
        if rel in self._gone:  # noted already (by a worker before the watcher): once
            self._forget(rel)
        self._gone[rel] = (base.size, base.mtime_ns, time.monotonic())
        self._by_stat.setdefault((base.size, base.mtime_ns), []).append(rel)

    def came(self, rel: str, size: int, mtime_ns: int) -> None:
        """A new path appeared: pair it with one that went with the same size and mtime
        (one of the same name first, as in a moved folder)."""
        with self._lock:
            if not self._gone:
                return
            self._expire(time.monotonic())
            candidates = self._by_stat.get((size, mtime_ns))
            if not candidates:
                return
            name = rel.rsplit("/", 1)[-1]
            same_name = [c for c in candidates if c.rsplit("/", 1)[-1] == name]
            source = (same_name or candidates)[0]
            self._forget(source)
            self._pair(source, rel)

    def pair(self, source: str, destination: str) -> None:
        """The hub moved ``source`` to ``destination``."""
        with self._lock:
            self._pair(source, destination)

    def expecting(self) -> bool:
        """Whether a path went away lately (else a new path needs no look)."""
        return bool(self._gone)

    def take(self, destination: str) -> str | None:
        """The source paired with ``destination``; it stays a source until :meth:`done`."""
        with self._lock:
            return self._source_of.pop(destination, None)

    def done(self, source: str) -> None:
        with self._lock:
            self._sources.discard(source)

    def is_source(self, rel: str) -> bool:
        with self._lock:
            return rel in self._sources

    def wait_left(self, rel: str, base: Synced) -> float:
        """Seconds left before a hub delete of ``rel`` (gone lately, not paired) may go.

        A worker may find the file missing before the watcher has reported its removal
        (the path was queued for another reason just as it was renamed away): the window
        then starts now, once per removal, so the rename's other half can still pair."""
        with self._lock:
            gone = self._gone.get(rel)
            if gone is None and rel not in self._held:
                self._held.add(rel)
                self._note(rel, base)
                return WINDOW
            return 0.0 if gone is None else max(0.0, gone[2] + WINDOW - time.monotonic())

    def settled(self, rel: str) -> None:
        """``rel`` was settled (deleted on the hub, or there again): a later removal of it
        gets a window of its own."""
        with self._lock:
            self._held.discard(rel)
            if rel in self._gone:
                self._forget(rel)

    def _pair(self, source: str, destination: str) -> None:
        self._source_of[destination] = source
        self._sources.add(source)

    def _forget(self, rel: str) -> None:
        size, mtime_ns, _ = self._gone.pop(rel)
        same = self._by_stat[(size, mtime_ns)]
        same.remove(rel)
        if not same:
            del self._by_stat[(size, mtime_ns)]

    def _expire(self, now: float) -> None:
        for rel in [r for r, (_, _, when) in self._gone.items() if when + WINDOW < now]:
            self._forget(rel)


def rename_local(root: Path, source: str, destination: str, expected: LocalFile) -> bool:
    """Rename ``source`` to ``destination`` if the source is still ``expected`` and the
    destination does not exist (a hard link refuses to replace: nothing is overwritten);
    False if not."""
    src, dst = root / source, root / destination
    try:
        st = os.stat(src, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if (st.st_size, st.st_mtime_ns) != (expected.size, expected.mtime_ns):
        return False
    try:
        in_folder_of(dst, lambda: os.link(src, dst, follow_symlinks=False))
    except (FileExistsError, FileNotFoundError):
        return False
    with contextlib.suppress(FileNotFoundError):
        src.unlink()
    return True
