"""Futures: a sent request's handle, backed by SQLite so it outlives the process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedbox.errors import ResponseTimeout, UnauthenticatedResponse
from fedbox.rpc._sqlite import Database
from fedbox.rpc.messages import Response

if TYPE_CHECKING:
    from fedbox.rpc.box import Box

__all__ = ["Future", "FutureRecord", "FutureStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS futures (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    recipient TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    status INTEGER,
    resolved REAL
);
CREATE INDEX IF NOT EXISTS futures_pending ON futures (app) WHERE status IS NULL;
"""


@dataclass(frozen=True, slots=True)
class FutureRecord:
    """What is remembered of a sent request: enough to find its response file again."""

    id: str
    app: str
    endpoint: str
    recipient: str
    created: float
    expires: float
    status: int | None = None
    resolved: float | None = None


class FutureStore:
    """``{state_dir}/futures.db`` (WAL)."""

    def __init__(self, path: Path) -> None:
        self._db = Database(path, _SCHEMA)

    def add(self, record: FutureRecord) -> None:
        self._db.execute(
            "INSERT INTO futures (id, app, endpoint, recipient, created, expires)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.app,
                record.endpoint,
                record.recipient,
                record.created,
                record.expires,
            ),
        )

    def get(self, id: str) -> FutureRecord | None:
        rows = self._db.query("SELECT * FROM futures WHERE id=?", (id,))
        return FutureRecord(**dict(rows[0])) if rows else None

    def resolve(self, id: str, status: int, at: float) -> None:
        self._db.execute(
            "UPDATE futures SET status=?, resolved=? WHERE id=? AND status IS NULL",
            (status, at, id),
        )

    def pending(self, app: str | None = None) -> list[FutureRecord]:
        sql = "SELECT * FROM futures WHERE status IS NULL"
        params: tuple[str, ...] = ()
        if app is not None:
            sql += " AND app=?"
            params = (app,)
        return [FutureRecord(**dict(r)) for r in self._db.query(sql + " ORDER BY created", params)]

    def close(self) -> None:
        self._db.close()


class Future:
    """The pending answer to one request. Cheap to recreate: ``app.future(id)``."""

    def __init__(self, box: Box, record: FutureRecord) -> None:
        self._box = box
        self.record = record

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def recipient(self) -> str:
        return self.record.recipient

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<Future {self.id} to {self.recipient} {state}>"

    def done(self) -> bool:
        """True once the response file is in the store (read it with :meth:`result`)."""
        return self._box.response_arrived(self.record)

    def result(self, *, stream: bool = False) -> Response:
        """The response, without waiting; ResponseTimeout if it has not arrived.

        With ``stream=True`` a 200 response has an empty ``body`` and a ``payload`` to read
        once (large bodies then reach the caller's objects without a whole-body copy) and
        to close.
        """
        response = self._box.read_response(self.record, stream=stream)
        if response is None:
            raise ResponseTimeout(f"no response yet to {self.id}", self.id)
        return response

    def wait(self, timeout: float | None = None, *, stream: bool = False) -> Response:
        """Block until the response arrives; ResponseTimeout after ``timeout`` seconds.

        Wakes on the store's file events (or its polling), never on a fixed sleep. A
        timeout leaves the request in place: waiting again later can still succeed. A
        response an encrypting box cannot authenticate is set aside and the wait goes on
        (a planted file cannot end it); the timeout then says what was set aside.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        set_aside: UnauthenticatedResponse | None = None
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            done, _ = self._box.wait([self], timeout=remaining)
            if not done:
                seen = f"; set aside: {set_aside}" if set_aside is not None else ""
                raise ResponseTimeout(
                    f"no response from {self.recipient} to {self.id} within {timeout} s{seen}",
                    self.id,
                )
            try:
                return self.result(stream=stream)
            except UnauthenticatedResponse as exc:
                set_aside = exc
