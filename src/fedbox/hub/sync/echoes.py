"""Files the daemon itself just renamed into the folder, told apart from the user's.

Each download ends with a rename into the folder, which the folder watcher reports like
any file written there. Settling that report again (a queue hand-off, a journal read,
three stats) only concludes "nothing to do": in a burst of a thousand downloads it was
most of the receiving daemon's CPU. So the settler notes each file it is about to place
(inode, size, mtime) and the first report of that path is dropped if the file there is
still exactly that one. A file the user rewrote or replaced since is another inode or
another size or mtime: it is reported and synced as before.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["OwnPlacements"]

_KEEP = 100_000
"""Placements held at most (their reports were lost, as after a watcher overflow)."""


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class OwnPlacements:
    """Thread-safe: workers note placements, the watcher's thread asks about reports."""

    def __init__(self, root: Path) -> None:
        self._root = str(root)
        self._placed: dict[str, tuple[int, int, int, int]] = {}
        self._lock = threading.Lock()

    def placing(self, target: Path, st: os.stat_result) -> None:
        """``target`` (in the folder) is about to become the file ``st`` describes (call
        before the rename: the watcher may report it before the rename returns)."""
        with self._lock:
            if len(self._placed) >= _KEEP:
                self._placed.clear()
            self._placed[str(target)] = _identity(st)

    def failed(self, target: Path) -> None:
        """The rename did not happen."""
        with self._lock:
            self._placed.pop(str(target), None)

    def is_echo(self, rel: str) -> bool:
        """True (once) if the report of ``rel`` is the daemon's own placement and the file
        there is still the one placed; False for anything else."""
        full = os.path.join(self._root, rel)
        with self._lock:
            placed = self._placed.pop(full, None)
        if placed is None:
            return False
        try:
            st = os.stat(full, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return _identity(st) == placed
