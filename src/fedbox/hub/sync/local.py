"""The folder side: one walk at start, then OS file events.

Events come from :class:`fedbox.store.inotify.InotifyRoot` (one inotify instance per
tree, sub-millisecond): files written or renamed in, and files or folders deleted or
renamed away. Where inotify is missing or unusable, or with ``--poll``, the folder is
walked again every few seconds.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from fedbox.store.inotify import InotifyRoot, inotify_available

__all__ = ["FolderWatcher", "walk"]

logger = logging.getLogger(__name__)

RESCAN_SECONDS = 3.0


def walk(root: Path) -> dict[str, tuple[int, int]]:
    """Every regular, non-hidden file below ``root``: relative path -> (size, mtime_ns)."""
    found: dict[str, tuple[int, int]] = {}
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = [e for e in it if not e.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                rel = Path(entry.path).relative_to(root).as_posix()
                found[rel] = (st.st_size, st.st_mtime_ns)
    return found


class FolderWatcher:
    """Calls ``touched(rel)`` for files written or renamed in, ``removed(rel)`` for files
    or folders deleted or renamed away, until :meth:`close`.

    ``poll`` (or no usable inotify) walks the folder every :data:`RESCAN_SECONDS`
    instead: for folders on network mounts, where the OS does not see others' writes.
    """

    def __init__(
        self,
        root: Path,
        touched: Callable[[str], None],
        removed: Callable[[str], None],
        poll: bool = False,
    ) -> None:
        self._stop = threading.Event()
        self._unsubscribe: Callable[[], None] | None = None
        if not poll and inotify_available():
            try:
                self._unsubscribe = InotifyRoot.subscribe(root, touched, removed)
                return
            except OSError as exc:  # out of inotify instances or watches
                logger.warning("no inotify for %s (%s): walking it instead", root, exc)
        self._thread = threading.Thread(
            target=self._rescan, args=(root, touched, removed), name="sync-rescan", daemon=True
        )
        self._thread.start()

    @property
    def events(self) -> str:
        """Where local changes come from, for the status."""
        return "inotify" if self._unsubscribe is not None else f"a walk every {RESCAN_SECONDS:g} s"

    def _rescan(
        self, root: Path, touched: Callable[[str], None], removed: Callable[[str], None]
    ) -> None:
        seen = walk(root)
        while not self._stop.wait(RESCAN_SECONDS):
            now = walk(root)
            for rel in seen.keys() - now.keys():  # gone first: a rename then pairs up
                removed(rel)
            for rel, stat in now.items():
                if seen.get(rel) != stat:
                    touched(rel)
            seen = now

    def close(self) -> None:
        self._stop.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
