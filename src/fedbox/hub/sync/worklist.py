"""The daemon's queue of paths to sync, and the change-feed cursor it may save.

Paths come from OS events and the pushed feed; requests and responses
(``.request``/``.response``) go ahead of bulk files. One worker holds a path at a time: a
path touched while in flight is queued again once its worker is done. A feed batch's
cursor is saved only once every path in it is settled, so a crash re-reads changes
rather than losing them. Paths that could not be settled (hub away, disk full, a rename
still pairing) wait here for their retry time.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fedbox.hub.sync.reconcile import RemoteFile

__all__ = ["UNKNOWN", "WorkList"]

UNKNOWN: Any = object()
"""No news from the hub about a path: it is taken to be as the journal says."""
_RPC_SUFFIXES = (".request", ".response")


@dataclass
class _Batch:
    cursor: int
    paths: set[str] = field(default_factory=set)


class WorkList:
    """Paths to sync, with what the feed said of each (its hint), shared by the workers;
    ``on_cursor`` saves a cursor once every path of its batch is settled."""

    def __init__(self, on_cursor: Callable[[int], None]) -> None:
        self._on_cursor = on_cursor
        lock = threading.RLock()
        self._cv = threading.Condition(lock)
        """Idleness, retries and stopping: waited on with timeouts (``tick``, ``wait_idle``)."""
        self._ready = threading.Condition(lock)
        """A path was queued: only workers wait on it, so a wake-up reaches one of them
        and is never taken by a thread that only ticks."""
        self._heap: list[tuple[int, int, str]] = []
        self._order = itertools.count()
        self._queued: set[str] = set()
        self._busy: set[str] = set()
        self._again: set[str] = set()
        self._hints: dict[str, RemoteFile | None] = {}
        self._batches: deque[_Batch] = deque()
        self._retry: dict[str, float] = {}
        self._tries: dict[str, int] = {}
        self._deferred: dict[str, float] = {}
        self._stopping = False
        self.newest_cursor: int | None = None
        """The cursor of the newest batch of changes noted (None before the first)."""

    def add(self, rel: str) -> None:
        with self._cv:
            self._add_locked(rel)

    def _add_locked(self, rel: str) -> None:
        if rel in self._busy:
            self._again.add(rel)
        elif rel not in self._queued:
            self._queued.add(rel)
            priority = 0 if rel.endswith(_RPC_SUFFIXES) else 1
            heapq.heappush(self._heap, (priority, next(self._order), rel))
            self._ready.notify()

    def note(self, news: dict[str, RemoteFile | None], cursor: int) -> None:
        """Queue a batch of the hub's news, to settle before ``cursor`` is saved."""
        with self._cv:
            self.newest_cursor = max(cursor, self.newest_cursor or 0)
            self._hints.update(news)
            self._batches.append(_Batch(cursor, set(news)))
            for rel in news:
                self._add_locked(rel)
            self._advance()

    def again_inside(self, folder: str) -> None:
        """Paths in flight below ``folder`` go again once done (their journal entries may
        not be written yet)."""
        lead = folder + "/"
        with self._cv:
            for inside in [p for p in self._busy if p.startswith(lead)]:
                self._again.add(inside)

    def take(self) -> tuple[str, Any] | None:
        """The next path and its hint (or :data:`UNKNOWN`), now in flight; None once
        stopping."""
        with self._cv:
            while not self._heap and not self._stopping:
                self._ready.wait()
            if self._stopping:
                return None
            _, _, rel = heapq.heappop(self._heap)
            self._queued.discard(rel)
            self._busy.add(rel)
            return rel, self._hints.pop(rel, UNKNOWN)

    def done(self, rel: str, hint: Any, settled: bool) -> None:
        """The worker of ``rel`` is done; unless ``settled`` it keeps its hint to retry."""
        with self._cv:
            self._busy.discard(rel)
            if not settled:
                if rel not in self._hints and hint is not UNKNOWN:
                    self._hints[rel] = hint
            elif rel not in self._again:
                for batch in self._batches:
                    batch.paths.discard(rel)
                self._advance()
            if rel in self._again:
                self._again.discard(rel)
                self._add_locked(rel)
            if not self._heap and not self._busy:  # for wait_idle; not a herd per path
                self._cv.notify_all()

    def _advance(self) -> None:
        """Save the cursor of the newest batch whose paths are all settled (lock held)."""
        cursor = None
        while self._batches and not self._batches[0].paths:
            cursor = self._batches.popleft().cursor
        if cursor is not None:
            self._on_cursor(cursor)

    def retry_in(self, rel: str, seconds: float) -> None:
        with self._cv:
            self._retry[rel] = time.monotonic() + seconds

    def back_off(self, rel: str) -> None:
        """Retry ``rel`` later, twice as late each time in a row (up to 2 s)."""
        with self._cv:
            tries = self._tries.get(rel, 0)
            self._tries[rel] = tries + 1
            self._retry[rel] = time.monotonic() + min(0.1 * 2**tries, 2.0)

    def defer(self, rel: str, seconds: float) -> None:
        """Retry ``rel`` later without holding up idleness (a refusal, not a failure)."""
        with self._cv:
            self._deferred[rel] = time.monotonic() + seconds

    def succeeded(self, rel: str) -> None:
        with self._cv:
            self._tries.pop(rel, None)

    def tick(self) -> bool:
        """Queue the paths whose retry time came, then wait a moment; False once
        stopping."""
        with self._cv:
            if self._stopping:
                return False
            now = time.monotonic()
            for waiting in (self._retry, self._deferred):
                for rel in [rel for rel, when in waiting.items() if when <= now]:
                    del waiting[rel]
                    self._add_locked(rel)
            self._cv.wait(0.05)
        return True

    def pending(self) -> tuple[int, int]:
        """(downloads, all paths) queued or in flight."""
        with self._cv:
            downloads = sum(1 for rel in self._queued | self._busy if rel in self._hints)
            return downloads, len(self._queued) + len(self._busy)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once nothing is queued, in flight or waiting to be retried."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._heap or self._busy or self._retry:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(0.05 if left is None else min(left, 0.05))
        return True

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
            self._ready.notify_all()
