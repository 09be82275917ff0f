"""The audit trail: one row per call, on each side, kept after the files are cleaned up,
and one row per change of a job's state or refused action on a job (``fedbox.rds``).

It is part of the message path, not best-effort logging: a handler only runs after its
request has been claimed here, which is also what makes handling exactly-once. A call is
named by its id *and* its peer: ids are visible in the folders, so another peer can send
a request under someone else's pending id (issue 11.8), and must not take its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedbox.rpc._sqlite import Database

__all__ = ["AuditLog", "AuditRecord", "JobEvent"]

_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
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
    owner TEXT,
    PRIMARY KEY (id, direction, peer)
)"""
_PRIMARY_KEY = ("id", "direction", "peer")
_JOB_EVENTS = """
CREATE TABLE IF NOT EXISTS job_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    before TEXT,
    after TEXT,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job, seq);
"""
_SCHEMA = (
    _TABLE.format(name="calls")
    + ";\nCREATE INDEX IF NOT EXISTS calls_created ON calls (created);\n"
    + _JOB_EVENTS
)


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
    owner: str | None
    """Which serving process claimed an incoming request (``fedbox.rpc.lease``)."""


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One change of a job's state (``before`` -> ``after``), or an action on it that was
    refused (``action`` = "refused ...", no states). ``actor`` is the authenticated
    sender, the owner, or an auto-approval rule (``rule:{sha256}``)."""

    seq: int
    job: str
    at: float
    actor: str
    action: str
    before: str | None
    after: str | None
    reason: str


class AuditLog:
    """SQLite (WAL) at ``{state_dir}/audit.db``. A log written by an older fedbox is
    upgraded in place when opened, its rows kept."""

    def __init__(self, path: Path) -> None:
        self._db = Database(path, _SCHEMA)
        if not self._is_current():
            self._upgrade()

    def _is_current(self) -> bool:
        info = self._db.query("PRAGMA table_info(calls)")
        key = tuple(r["name"] for r in sorted(info, key=lambda r: r["pk"]) if r["pk"])
        columns = {r["name"] for r in info}
        return key == _PRIMARY_KEY and columns == set(AuditRecord.__slots__)

    def _upgrade(self) -> None:
        """Rebuild the table (SQLite cannot change a primary key in place) in one write
        transaction: another process opening the same log waits, then finds it done."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if not self._is_current():
                old = {r["name"] for r in self._db.query("PRAGMA table_info(calls)")}
                columns = ", ".join(c for c in AuditRecord.__slots__ if c in old)
                self._db.execute(_TABLE.format(name="calls_upgraded"))
                self._db.execute(
                    f"INSERT OR IGNORE INTO calls_upgraded ({columns}) SELECT {columns} FROM calls"
                )
                self._db.execute("DROP TABLE calls")
                self._db.execute("ALTER TABLE calls_upgraded RENAME TO calls")
                self._db.execute("CREATE INDEX IF NOT EXISTS calls_created ON calls (created)")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

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
        owner: str | None = None,
    ) -> bool:
        """Record an incoming request; False if any thread or process claimed it before."""
        return (
            self._db.execute(
                "INSERT OR IGNORE INTO calls"
                " (id, direction, peer, app, endpoint, size, sha256, created, owner)"
                " VALUES (?, 'in', ?, ?, ?, ?, ?, ?, ?)",
                (id, peer, app, endpoint, size, sha256, created, owner),
            )
            == 1
        )

    def take_over(self, *, id: str, peer: str, owner: str, previous: str | None) -> bool:
        """Move an unanswered claim from ``previous`` (gone) to ``owner``; False if another
        process took it over first."""
        return (
            self._db.execute(
                "UPDATE calls SET owner=? WHERE id=? AND direction='in' AND peer=?"
                " AND status IS NULL AND owner IS ?",
                (owner, id, peer, previous),
            )
            == 1
        )

    def incoming(self, peer: str, id: str) -> AuditRecord | None:
        """The row of request ``id`` from ``peer``, if it was ever claimed or refused."""
        return self.call(id=id, direction="in", peer=peer)

    def call(self, *, id: str, direction: str, peer: str) -> AuditRecord | None:
        """The row of one call, if there is one."""
        rows = self._db.query(
            "SELECT * FROM calls WHERE id=? AND direction=? AND peer=?", (id, direction, peer)
        )
        return AuditRecord(**dict(rows[0])) if rows else None

    def replying(self, *, id: str, peer: str, at: float) -> None:
        """A response to a claimed request is being written, with ``created`` = ``at``
        (``status`` stays unset until it is written: ``record_answer``)."""
        self._db.execute(
            "UPDATE calls SET answered=? WHERE id=? AND direction='in' AND peer=?"
            " AND status IS NULL",
            (at, id, peer),
        )

    def record_answer(
        self,
        *,
        id: str,
        direction: str,
        peer: str,
        status: int,
        answered: float,
        response_size: int | None = None,
        note: str | None = None,
    ) -> None:
        self._db.execute(
            "UPDATE calls SET status=?, answered=?, response_size=?, note=COALESCE(?, note)"
            " WHERE id=? AND direction=? AND peer=?",
            (status, answered, response_size, note, id, direction, peer),
        )

    def record_note(self, *, id: str, direction: str, peer: str, note: str) -> None:
        """Remember something about a call without changing its outcome."""
        self._db.execute(
            "UPDATE calls SET note=? WHERE id=? AND direction=? AND peer=?",
            (note, id, direction, peer),
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
            " ON CONFLICT (id, direction, peer) DO UPDATE SET status=excluded.status,"
            " answered=excluded.answered, note=excluded.note",
            (id, peer, app, endpoint, at, at, status, note),
        )

    def record_job_event(
        self,
        *,
        job: str,
        at: float,
        actor: str,
        action: str,
        before: str | None = None,
        after: str | None = None,
        reason: str = "",
    ) -> None:
        """Append one job event; rows keep the order they were recorded in (``seq``)."""
        self._db.execute(
            "INSERT INTO job_events (job, at, actor, action, before, after, reason)"
            " VALUES (?,?,?,?,?,?,?)",
            (job, at, actor, action, before, after, reason),
        )

    def job_events(self, job: str | None = None, *, limit: int = 1000) -> list[JobEvent]:
        """The newest ``limit`` events (of one job, if given), oldest first."""
        where, params = ("WHERE job=?", [job]) if job is not None else ("", [])
        rows = self._db.query(
            f"SELECT * FROM (SELECT * FROM job_events {where} ORDER BY seq DESC LIMIT ?)"
            " ORDER BY seq",
            [*params, limit],
        )
        return [JobEvent(**dict(row)) for row in rows]

    def records(
        self,
        *,
        app: str | None = None,
        peer: str | None = None,
        status: int | None = None,
        direction: str | None = None,
        since: float | None = None,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Newest first, filtered by whichever arguments are given (``since``: created
        at or after this time)."""
        where: list[str] = []
        params: list[object] = []
        if since is not None:
            where.append("created>=?")
            params.append(since)
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

    def counts_since(self, since: float) -> dict[str, int]:
        """How many calls each direction ('in', 'out') has had since ``since``."""
        rows = self._db.query(
            "SELECT direction, COUNT(*) AS n FROM calls WHERE created>=? GROUP BY direction",
            (since,),
        )
        counts = {"in": 0, "out": 0}
        counts.update({row["direction"]: row["n"] for row in rows})
        return counts

    def peers(self) -> list[str]:
        """Every peer a call was made to or served for, sorted."""
        return [
            row["peer"] for row in self._db.query("SELECT DISTINCT peer FROM calls ORDER BY peer")
        ]

    def apps(self) -> list[str]:
        """Every app named in a call, sorted (the choices of a filter)."""
        return [row["app"] for row in self._db.query("SELECT DISTINCT app FROM calls ORDER BY app")]

    def close(self) -> None:
        self._db.close()
