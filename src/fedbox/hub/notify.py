"""Tell every hub process what another committed: a write, or a revoked login.

On PostgreSQL every write transaction sends ``NOTIFY fedbox_changes`` (delivered at its
commit, never for a rolled-back one) and a thread here LISTENs on its own connection:
a change written through one process reaches websockets held by the others within
milliseconds. On any engine the same thread also compares the change log's head every
``fallback`` seconds, and wakes the feeds after (re)connecting: a notification lost to a
dropped connection, or a row written by something that does not notify, costs that much
latency and never the change itself. The change log stays the truth; a wake-up only says
"look again".

A revocation (``fedbox hub revoke``, a replayed refresh token) sends ``NOTIFY
fedbox_revoked`` with the email: every process forgets that it saw the email's sessions
live, so its next request with their tokens is checked against the database and refused.
The sessions table stays the truth: a process that was not listening forgets every
session when it listens again, and a notification lost otherwise costs at most
``--session-check`` seconds (see :class:`~fedbox.hub.identity.Sessions`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text

if TYPE_CHECKING:
    from psycopg import Notify

__all__ = ["CHANNEL", "REVOKED", "ChangeWatcher", "announce_revoked"]

CHANNEL = "fedbox_changes"
REVOKED = "fedbox_revoked"
_log = logging.getLogger(__name__)


def announce_revoked(conn: Connection, email: str) -> None:
    """Tell every listening hub process, when ``conn``'s transaction commits, that logins
    of ``email`` were revoked."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_notify(:channel, :email)"), {"channel": REVOKED, "email": email}
        )


class ChangeWatcher:
    """A daemon thread calling ``wake`` when the change log may have grown, and
    ``revoked(email)`` when logins of ``email`` were revoked (``revoked(None)``: maybe
    any, while it was not listening)."""

    TICK = 0.5
    """Seconds between checks that the watcher should stop (and, for SQLite, naps)."""

    def __init__(
        self,
        engine: Engine,
        head: Callable[[], int],
        wake: Callable[[], None],
        fallback: float,
        revoked: Callable[[str | None], None],
    ) -> None:
        self._engine = engine
        self._head = head
        self._wake = wake
        self._revoked = revoked
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
            conn.execute(f"LISTEN {REVOKED}")
            self._revoked(None)  # anything revoked or committed while we were not listening
            self._wake()
            while not self._stopping.is_set():
                first = list(conn.notifies(timeout=self.TICK, stop_after=1))
                if not first:
                    self._check_head()
                    continue
                # A revocation is acted on at once; a burst of writes is one look at the
                # log: take what else came first.
                rest = self._take_revocations(first)
                rest += self._take_revocations(list(conn.notifies(timeout=0.001)))
                if rest:
                    self._wake()

    def _take_revocations(self, notes: list[Notify]) -> list[Notify]:
        """Act on the revocations among ``notes``; the others (writes)."""
        writes = []
        for note in notes:
            if note.channel == REVOKED:
                self._revoked(note.payload)
            else:
                writes.append(note)
        return writes

    def _check_head(self) -> None:
        if time.monotonic() - self._checked < self.fallback:
            return
        self._checked = time.monotonic()
        head = self._head()
        if head != self._seen:
            self._seen = head
            self._wake()
