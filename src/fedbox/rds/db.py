"""A SQLite file in the state dir (WAL: the daemon writes while a CLI command reads)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fedbox.datasite.workspace import create_private

__all__ = ["Database"]


class Database:
    def __init__(self, path: Path, schema: str) -> None:
        self._conn = sqlite3.connect(
            create_private(path), check_same_thread=False, isolation_level=None
        )
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(schema)

    def execute(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> int:
        with self._lock:
            bound = params if isinstance(params, Mapping) else tuple(params)
            return self._conn.execute(sql, bound).rowcount

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction, taken at once so a read-then-write cannot interleave
        with another process's."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
