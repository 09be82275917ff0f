"""The newest change-log rows, read once per wake-up for every feed of this process.

Without it each open websocket queried the change log itself whenever a write committed
anywhere: one query per participant per write, which under a few hundred participants
made the database the bottleneck. Here one reader (whichever feed asks first after a
wake-up) fetches what is new and keeps the most recent rows in a bounded window; the
other feeds filter that window in memory by their caller's access. A feed whose cursor is
older than the window (a client reconnecting after a while) gets ``None`` and asks the
database, so the change log stays the truth and nothing is skipped.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable

from fedbox.hub.index import Change, FileIndex

__all__ = ["ChangeTail"]


def _seq(change: Change) -> int:
    return change.seq


def _nothing() -> None:
    pass


class ChangeTail:
    """A window of the change log: every row with ``start < seq <= head``, in order.

    Rows commit in sequence order (writers are serialized), so reading "after head"
    again after each wake-up never leaves a hole behind the window.
    """

    READ = 1000
    """Rows per query while catching up."""

    def __init__(
        self, index: FileIndex, capacity: int = 10_000, on_read: Callable[[], None] = _nothing
    ) -> None:
        self._index = index
        self._capacity = capacity
        self._on_read = on_read
        self._rows: list[Change] = []
        """Replaced, never changed in place: a reader keeps a consistent list unlocked."""
        self._start: int | None = None
        self._stale = True
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """The log may have grown: the next :meth:`after` reads it first (any thread)."""
        self._stale = True

    def after(self, cursor: int, limit: int) -> list[Change] | None:
        """Up to ``limit`` rows after ``cursor``; ``None`` if the window no longer reaches
        back to ``cursor`` (the caller reads the change log itself)."""
        with self._lock:
            if self._stale:
                self._stale = False  # before reading: a commit during the read marks it again
                try:
                    self._catch_up()
                except BaseException:
                    self._stale = True  # the database is away: the next look tries again
                    raise
            start, rows = self._start, self._rows
        assert start is not None
        if cursor < start:
            return None
        first = bisect_right(rows, cursor, key=_seq)
        return rows[first : first + limit]

    def _catch_up(self) -> None:
        if self._start is None:
            self._start = self._index.head()
            self._on_read()
        rows = self._rows
        head = rows[-1].seq if rows else self._start
        while True:
            batch = self._index.changes(head, self.READ)
            self._on_read()
            if not batch:
                break
            rows = rows + batch
            head = batch[-1].seq
            if len(batch) < self.READ:
                break
        if len(rows) > self._capacity:
            self._start = rows[-self._capacity - 1].seq
            rows = rows[-self._capacity :]
        self._rows = rows
