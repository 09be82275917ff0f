"""The newest change-log rows, read once per wake-up for every feed of this process.

Without it each open websocket queried the change log itself whenever a write committed
anywhere: one query per participant per write, which under a few hundred participants
made the database the bottleneck. Here one reader (whichever feed asks first after a
wake-up) fetches what is new and keeps the most recent rows in a bounded window; the
other feeds filter that window in memory by their caller's access. A feed whose cursor is
older than the window (a client reconnecting after a while) gets ``None`` and asks the
database, so the change log stays the truth and nothing is skipped.

Feeds on the event loop await :meth:`ChangeTail.refresh`: one worker-thread visit per
wake-up for all of them, then each reads the window without leaving the loop. A thread
hop per feed per wake-up was what a few hundred open sockets spent most CPU on.
"""

from __future__ import annotations

import asyncio
import threading
from bisect import bisect_right
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from fedbox.hub.index import Change, FileIndex

__all__ = ["ChangeTail"]


def _seq(change: Change) -> int:
    return change.seq


def _nothing() -> None:
    pass


def _ignore(_after: int, _rows: list[Change]) -> None:
    pass


class ChangeTail:
    """A window of the change log: every row with ``start < seq <= head``, in order.

    Rows commit in sequence order (writers are serialized), so reading "after head"
    again after each wake-up never leaves a hole behind the window.
    """

    READ = 1000
    """Rows per query while catching up."""

    def __init__(
        self,
        index: FileIndex,
        capacity: int = 10_000,
        on_read: Callable[[], None] = _nothing,
        on_rows: Callable[[int, list[Change]], None] = _ignore,
    ) -> None:
        """``on_rows(after, rows)`` sees every batch read, ``rows`` being all the log
        holds after ``after`` (the access rules catch up from them, no query of their own)."""
        self._index = index
        self._capacity = capacity
        self._on_read = on_read
        self._on_rows = on_rows
        self._window: tuple[int, list[Change]] | None = None
        """``(start, rows)``, None before the first read. Replaced in one assignment, never
        changed in place: a reader without the lock still sees a consistent pair."""
        self._stale = True
        self._lock = threading.Lock()
        self._reading: asyncio.Future[None] | None = None

    def invalidate(self) -> None:
        """The log may have grown: the next :meth:`after` reads it first (any thread)."""
        self._stale = True

    def after(self, cursor: int, limit: int) -> list[Change] | None:
        """Up to ``limit`` rows after ``cursor``, reading the log first if it grew (in a
        worker thread); ``None`` if the window no longer reaches back to ``cursor`` (the
        caller reads the change log itself)."""
        self._read_if_stale()
        return self.window(cursor, limit)

    async def refresh(self) -> None:
        """Read what the log gained, once for every feed of the event loop asking: the
        first starts one worker-thread read, the others await the same one."""
        while self._stale:
            if self._reading is None or self._reading.done():
                self._reading = asyncio.ensure_future(run_in_threadpool(self._read_if_stale))
            # Shielded: a feed whose client leaves must not cancel the others' read.
            await asyncio.shield(self._reading)

    def window(self, cursor: int, limit: int) -> list[Change] | None:
        """As :meth:`after` but without reading the log (safe on the event loop): the
        rows as of the last read; ``None`` also before the first."""
        if self._window is None:
            return None
        start, rows = self._window
        if cursor < start:
            return None
        first = bisect_right(rows, cursor, key=_seq)
        return rows[first : first + limit]

    def head(self) -> int:
        """The newest change the window holds, as of the last read (0 before any)."""
        if self._window is None:
            return 0
        start, rows = self._window
        return rows[-1].seq if rows else start

    def _read_if_stale(self) -> None:
        with self._lock:
            if self._stale:
                self._stale = False  # before reading: a commit during the read marks it again
                try:
                    self._catch_up()
                except BaseException:
                    self._stale = True  # the database is away: the next look tries again
                    raise

    def _catch_up(self) -> None:
        if self._window is None:
            self._window = (self._index.head(), [])
            self._on_read()
        start, rows = self._window
        head = rows[-1].seq if rows else start
        while True:
            batch = self._index.changes(head, self.READ)
            self._on_read()
            if not batch:
                break
            self._on_rows(head, batch)
            rows = rows + batch
            head = batch[-1].seq
            if len(batch) < self.READ:
                break
        if len(rows) > self._capacity:
            start = rows[-self._capacity - 1].seq
            rows = rows[-self._capacity :]
        self._window = (start, rows)
