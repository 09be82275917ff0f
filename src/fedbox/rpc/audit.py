"""The audit trail: one row per call, on each side, kept after the files are cleaned up.

It is part of the message path, not best-effort logging: a handler only runs after its
request has been claimed here, which is also what makes handling exactly-once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedbox.rpc._sqlite import Database

__all__ = ["AuditLog", "AuditRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    peer TEXT NOT NULL,
    app TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    size INTEGER,
    sha256 TEXT,
    created REAL,
    answered REAL,
    status INTEGER,
    response_size INTEGER,
    note TEXT,
    PRIMARY KEY (id, direction)
);
CREATE INDEX IF NOT EXISTS calls_created ON calls (created);
"""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One call as the log remembers it. ``direction`` is 'out' for calls we made."""

    id: str
    direction: str
    peer: str
    app: str
    endpoint: str
    size: int | None
    sha256: str | None
    created: float | None
    answered: float | None
    status: int | None
    response_size: int | None
    note: str | None


class AuditLog:
    """SQLite (WAL) at ``{state_dir}/audit.db``."""

    def __init__(self, path: Path) -> None:
        self._db = Database(path, _SCHEMA)

    def record_sent(
        self,
        *,
        id: str,
        peer: str,
        app: str,
        endpoint: str,
        size: int,
        sha256: str,
        created: float,
    ) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO calls"
            " (id, direction, peer, app, endpoint, size, sha256, created)"
            " VALUES (?, 'out', ?, ?, ?, ?, ?, ?)",
            (id, peer, app, endpoint, size, sha256, created),
        )

    def claim(
        self,
        *,
        id: str,
        peer: str,
        app: str,
        endpoint: str,
        size: int | None,
        sha256: str | None,
        created: float | None,
    ) -> bool:
        """Record an incoming request; False if any thread or process claimed it before."""
        return (
            self._db.execute(
                "INSERT OR IGNORE INTO calls"
                " (id, direction, peer, app, endpoint, size, sha256, created)"
                " VALUES (?, 'in', ?, ?, ?, ?, ?, ?)",
                (id, peer, app, endpoint, size, sha256, created),
            )
            == 1
        )

    def is_claimed(self, id: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM calls WHERE id=? AND direction='in'", (id,)))

    def record_answer(
        self,
        *,
        id: str,
        direction: str,
        status: int,
        answered: float,
        response_size: int | None = None,
        note: str | None = None,
    ) -> None:
        self._db.execute(
            "UPDATE calls SET status=?, answered=?, response_size=?, note=COALESCE(?, note)"
            " WHERE id=? AND direction=?",
            (status, answered, response_size, note, id, direction),
        )

    def record_refused(
        self,
        *,
        id: str,
        peer: str,
        app: str,
        endpoint: str,
        status: int,
        at: float,
        note: str,
    ) -> None:
        """A file that never reached a handler (quarantined, refused) still leaves a row."""
        self._db.execute(
            "INSERT INTO calls"
            " (id, direction, peer, app, endpoint, created, answered, status, note)"
            " VALUES (?, 'in', ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id, direction) DO UPDATE SET status=excluded.status,"
            " answered=excluded.answered, note=excluded.note",
            (id, peer, app, endpoint, at, at, status, note),
        )

    def records(
        self,
        *,
        app: str | None = None,
        peer: str | None = None,
        status: int | None = None,
        direction: str | None = None,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Newest first, filtered by whichever arguments are given."""
        where, params = [], []
        for column, value in (
            ("app", app),
            ("peer", peer),
            ("status", status),
            ("direction", direction),
        ):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        sql = "SELECT * FROM calls"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC LIMIT ?"
        params.append(limit)
        return [AuditRecord(**dict(row)) for row in self._db.query(sql, params)]

    def close(self) -> None:
        self._db.close()
