"""One SQLite connection shared by threads, in WAL mode, for the futures DB and audit log."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fedbox.datasite.workspace import create_private

__all__ = ["Database"]


class Database:
    """A locked connection: SQLite serialises writers anyway, and one handle is cheap.

    WAL lets other processes of the same identity (the CLI's ``fedbox messages``) read
    while a participant writes; ``busy_timeout`` covers short writer overlaps.
    """

    def __init__(self, path: Path, schema: str) -> None:
        self._conn = sqlite3.connect(
            create_private(path), check_same_thread=False, isolation_level=None
        )
        self._lock = threading.Lock()
        self._closed = False
        with self._lock:
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(schema)

    def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        with self._lock:
            return self._conn.execute(sql, tuple(params)).rowcount

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cur = self._conn.execute(sql, tuple(params))
            cur.row_factory = sqlite3.Row
            return cur.fetchall()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
