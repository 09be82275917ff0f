"""Wake this process's change feeds when any hub process commits a write.

On PostgreSQL every write transaction sends ``NOTIFY fedbox_changes`` (delivered at its
commit, never for a rolled-back one) and a thread here LISTENs on its own connection:
a change written through one process reaches websockets held by the others within
milliseconds. On any engine the same thread also compares the change log's head every
``fallback`` seconds, and wakes the feeds after (re)connecting: a notification lost to a
dropped connection, or a row written by something that does not notify, costs that much
latency and never the change itself. The change log stays the truth; a wake-up only says
"look again".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, text

__all__ = ["CHANNEL", "ChangeWatcher", "announce"]

CHANNEL = "fedbox_changes"
_log = logging.getLogger(__name__)


def announce(conn: Connection) -> None:
    """Notify every listening hub process when ``conn``'s transaction commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {CHANNEL}"))


class ChangeWatcher:
    """A daemon thread calling ``wake`` when the change log may have grown."""

    TICK = 0.5
    """Seconds between checks that the watcher should stop (and, for SQLite, naps)."""

    def __init__(
        self, engine: Engine, head: Callable[[], int], wake: Callable[[], None], fallback: float
    ) -> None:
        self._engine = engine
        self._head = head
        self._wake = wake
        self.fallback = fallback
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fedbox-change-watcher", daemon=True)
        self._seen = 0
        self._checked = 0.0

    def start(self) -> None:
        self._seen = self._head()
        self._checked = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._engine.dialect.name == "postgresql":
                    self._listen()
                else:
                    self._stopping.wait(self.TICK)
                    self._check_head()
            except Exception as exc:  # the database is away: retry, feeds keep their cursors
                _log.warning("change watcher: %s; retrying", exc)
                self._stopping.wait(1.0)

    def _listen(self) -> None:
        import psycopg

        dsn = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._wake()  # anything committed while we were not listening
            while not self._stopping.is_set():
                if list(conn.notifies(timeout=self.TICK, stop_after=1)):
                    # A burst of writes is one look at the log: take what else came.
                    list(conn.notifies(timeout=0.001))
                    self._wake()
                else:
                    self._check_head()

    def _check_head(self) -> None:
        if time.monotonic() - self._checked < self.fallback:
            return
        self._checked = time.monotonic()
        head = self._head()
        if head != self._seen:
            self._seen = head
            self._wake()
