"""The journal: what was last synced for each path, and how far the change feed was read.

It is the third side of the reconcile: a path whose file and hub version both still
match the journal needs nothing, so a restart after days offline touches only what
changed. It lives in ``DIR/.fedbox-sync/journal.db`` (hidden, so never synced).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Journal", "Synced"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS synced (
    path TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    absent INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_QUERY_PATHS = 500
"""Paths per query of :meth:`Journal.get_many` (SQLite bounds a statement's parameters)."""


@dataclass(frozen=True, slots=True)
class Synced:
    """The hub's ``version``/``sha256`` both sides agreed on, and the local file's
    ``size``/``mtime_ns`` then (an unchanged stat means an unchanged file: no rehash).

    ``absent``: the file was deleted here but the hub refused the delete (another
    participant's file); it stays away here until the hub's version changes.
    """

    version: int
    sha256: str
    size: int
    mtime_ns: int
    absent: bool = False


class Journal:
    """Thread-safe: the daemon's workers share one connection under a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def get(self, path: str) -> Synced | None:
        with self._lock:
            row = self._db.execute(
                "SELECT version, sha256, size, mtime_ns, absent FROM synced WHERE path = ?",
                (path,),
            ).fetchone()
        return None if row is None else Synced(row[0], row[1], row[2], row[3], bool(row[4]))

    def get_many(self, paths: list[str]) -> dict[str, Synced]:
        """The entries of those of ``paths`` the journal holds, in one query."""
        found: dict[str, Synced] = {}
        for start in range(0, len(paths), _QUERY_PATHS):
            chunk = paths[start : start + _QUERY_PATHS]
            with self._lock:
                rows = self._db.execute(
                    "SELECT path, version, sha256, size, mtime_ns, absent FROM synced "
                    f"WHERE path IN ({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            found.update((r[0], Synced(r[1], r[2], r[3], r[4], bool(r[5]))) for r in rows)
        return found

    def all(self) -> dict[str, Synced]:
        with self._lock:
            rows = self._db.execute(
                "SELECT path, version, sha256, size, mtime_ns, absent FROM synced"
            ).fetchall()
        return {r[0]: Synced(r[1], r[2], r[3], r[4], bool(r[5])) for r in rows}

    def under(self, folder: str) -> list[str]:
        """Journal paths inside ``folder`` (a folder moved or deleted as a whole)."""
        folder = folder.rstrip("/")
        with self._lock:  # a range on the key ("/" + 1 is "0"): no scan per deleted file
            rows = self._db.execute(
                "SELECT path FROM synced WHERE path >= ? AND path < ?", (folder + "/", folder + "0")
            ).fetchall()
        return [r[0] for r in rows]

    def put(self, path: str, synced: Synced) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO synced VALUES (?, ?, ?, ?, ?, ?)",
                (path, synced.version, synced.sha256, synced.size, synced.mtime_ns,
                 int(synced.absent)),
            )  # fmt: skip

    def drop(self, path: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM synced WHERE path = ?", (path,))

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        with self._lock:
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()
