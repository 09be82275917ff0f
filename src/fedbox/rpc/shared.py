"""What many boxes on one store in one process share: one watcher, one listing of the
inboxes, one pool of handler threads (issue 20).

A thousand in-process virtual clients, each with its own watcher thread, handler
thread and listing of every folder to find its own inboxes, spent their time handing
the GIL around thousands of threads and listing the store a thousand times over. Boxes
built with ``shared=`` (see :func:`fedbox.rpc.connect`) use these instead; everything
else about them (claims, audit log, futures, encryption, rerun after a crash) stays
their own, so each request still gets exactly one response.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from fedbox.datasite.paths import OUTBOX_PREFIX, inbox_reader
from fedbox.rpc.workers import WorkerPool
from fedbox.store import Store, Watcher

if TYPE_CHECKING:
    from fedbox.rpc.box import Box

__all__ = ["LISTING_REUSE", "SharedServing"]

logger = logging.getLogger(__name__)

LISTING_REUSE = 1.0
"""Seconds a listing of the store's folders answers every box that asks for its
inboxes, provided it began after the box started watching: the periodic rescans of a
thousand boxes come due together and then cost one listing, not a thousand."""
_SUFFIXES = (".request", ".response")


class SharedServing:
    """One watcher thread and ``threads`` handler threads for every box attached to it.

    ``store`` is the store the boxes are on, opened for this object alone (it is closed
    with it): its watcher reports the files of every outbox folder, and each goes to the
    box that reads that folder. Given the ``readers`` whose boxes may attach, only their
    inboxes are watched: the files the boxes write themselves (their responses, half of
    a round's files) then never reach the watcher. Close the boxes first, then this.
    """

    def __init__(
        self, store: Store, *, threads: int = 8, readers: Collection[str] | None = None
    ) -> None:
        self.store = store
        self._readers = frozenset(readers) if readers is not None else None
        self.pool = WorkerPool(threads, name="fedbox-shared")
        self._boxes: dict[str, Box] = {}
        self._servers: dict[str, Callable[[], bool]] = {}
        self._lock = threading.Lock()
        self._watcher: Watcher | None = None
        self._thread: threading.Thread | None = None
        self._listing_lock = threading.Lock()
        self._listed_at = -1.0
        self._inboxes: dict[str, list[str]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"<SharedServing {len(self._boxes)} boxes on {self.store!r}>"

    def attach(self, box: Box, serving: Callable[[], bool]) -> Watcher:
        """Report ``box``'s files to it from now on; the shared watcher (for
        :meth:`Watcher.expect`). ``serving`` says whether the box takes requests."""
        if self._readers is not None and box.email not in self._readers:
            raise ValueError(f"{box.email} is not among the readers this {self!r} watches for")
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            self._boxes[box.email] = box
            self._servers[box.email] = serving
            if self._watcher is None:
                self._watcher = self.store.watch("", _SUFFIXES, folders=self.watches)
                self._watcher.list_when(self._serving)
                self._thread = threading.Thread(
                    target=self._watch_loop, name="fedbox-shared-watch", daemon=True
                )
                self._thread.start()
            return self._watcher

    def watches(self, folder: str) -> bool:
        """Whether the shared watcher reports the files of the top-level ``folder``: an
        inbox of a box that may attach."""
        if not folder.startswith(OUTBOX_PREFIX):
            return False
        return self._readers is None or inbox_reader(folder) in self._readers

    def detach(self, box: Box) -> None:
        """Report nothing more to ``box`` (it is closing)."""
        with self._lock:
            if self._boxes.get(box.email) is box:
                del self._boxes[box.email]
                self._servers.pop(box.email, None)

    @property
    def attached(self) -> int:
        """How many boxes are attached now."""
        with self._lock:
            return len(self._boxes)

    def inboxes(self, email: str, since: float) -> list[str]:
        """The inbox folders of ``email``, from a listing begun after ``since``
        (``time.monotonic()``: when its box started watching, so nothing lands unseen)
        and at most :data:`LISTING_REUSE` seconds old."""
        with self._listing_lock:  # one listing at a time; those who waited reuse it
            now = time.monotonic()
            if self._listed_at < since or now - self._listed_at > LISTING_REUSE:
                index: dict[str, list[str]] = defaultdict(list)
                for folder in self.store.list_dirs():
                    reader = inbox_reader(folder)
                    if reader is not None:
                        index[reader].append(folder)
                self._inboxes, self._listed_at = dict(index), now
            return list(self._inboxes.get(email, ()))

    def _serving(self) -> bool:
        with self._lock:
            servers = list(self._servers.values())
        return any(serving() for serving in servers)

    def _owner(self, path: str) -> Box | None:
        reader = inbox_reader(path.partition("/")[0])
        # Read without the lock: a dict lookup is atomic.
        return None if reader is None else self._boxes.get(reader)

    def _watch_loop(self) -> None:
        """Hand each file to its box; one failing file never stops the loop."""
        assert self._watcher is not None
        for batch in self._watcher:
            for path in batch:
                box = self._owner(path)
                if box is None:
                    continue
                try:
                    box.dispatch(path)
                except Exception:
                    logger.exception("could not dispatch %s; continuing", path)

    def close(self) -> None:
        """Stop the watcher and the threads, and close the store. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watcher, thread = self._watcher, self._thread
        if watcher is not None:
            watcher.close()
        if thread is not None:
            thread.join(timeout=5)
        self.pool.close()
        self.store.close()
