"""The hub's tables (SQLAlchemy Core) and the engine that holds them.

Written for both engines the hub supports: SQLite (embedded default, WAL) and PostgreSQL.
Only portable SQL is used, but for PostgreSQL's advisory locks (:func:`lock_keys`,
:data:`WRITERS_TURN`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    text,
)

__all__ = [
    "WRITE",
    "WRITERS_TURN",
    "changes",
    "codes",
    "engine_url",
    "files",
    "keys",
    "lock_key",
    "lock_keys",
    "lock_schema",
    "login_hits",
    "metadata",
    "open_engine",
    "sessions",
    "upload_parts",
    "uploads",
]

metadata = MetaData()

files = Table(
    "files",
    metadata,
    Column("path", String(4096), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("writer", String(254), nullable=False),
    Column("mtime", Float, nullable=False),
    Column("blob", String(64), nullable=False),
    Index("files_writer", "writer"),
)
"""One row per visible file. ``version`` is the ``seq`` of the change that wrote it."""

changes = Table(
    "changes",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("op", String(8), nullable=False),
    Column("path", String(4096), nullable=False),
    Column("old_path", String(4096), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("writer", String(254), nullable=False),
    Column("time", Float, nullable=False),
)
"""The change log, and the hub-wide sequence: every put, move and delete is one row."""

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("refresh_hash", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Index("sessions_email", "email"),
)
"""A login: its refresh token (hashed, rotated on use) and whether it was revoked."""

codes = Table(
    "codes",
    metadata,
    Column("email", String(254), primary_key=True),
    Column("code_hash", String(64), nullable=False),
    Column("expires", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
)
"""The one pending login code of an email (hashed)."""


keys = Table(
    "keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)
"""Hub-wide secrets every process must share, such as the key that signs access tokens."""

login_hits = Table(
    "login_hits",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("key", String(320), nullable=False),
    Column("at", Float, nullable=False),
    Index("login_hits_key", "key", "at"),
)
"""Recent login requests per rate-limited key (an email or a client address), so every
hub process counts the same hits."""

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("path", String(4096), nullable=False),
    Column("writer", String(254), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created", Float, nullable=False),
    Column("received", BigInteger, nullable=False, default=0),
    Column("touched", Float, nullable=False),
    Index("uploads_by_target", "writer", "path", "size"),
)
"""A resumable upload in progress: ``received`` bytes so far (its parts), the last of
them at ``touched``."""

upload_parts = Table(
    "upload_parts",
    metadata,
    Column("upload_id", String(32), primary_key=True),
    Column("start", BigInteger, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("blob", String(64), nullable=False),
)
"""The bytes of an upload from ``start``: one blob per append, joined at the commit."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


WRITE = {"fedbox_write": True}
"""Execution options of a connection whose transactions will write."""


def _sqlite_turns() -> type[sqlite3.Connection]:
    """A connection class whose writing transactions take turns on a lock of this
    process before SQLite's own: a writer finding the database locked would otherwise
    sleep in SQLite's busy handler (1, 2, 5 ... 100 ms) however soon the lock came
    free, holding its request's thread meanwhile; under a few hundred concurrent
    requests those sleeps, not work, set the pace (every read queued behind them)."""
    turn = threading.Lock()

    class TurnTaking(sqlite3.Connection):
        _holds = False

        def take_turn(self) -> None:
            turn.acquire()
            self._holds = True

        def end_turn(self) -> None:
            if self._holds:
                self._holds = False
                turn.release()

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self.end_turn()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.end_turn()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.end_turn()

    return TurnTaking


def _sqlite_begin(conn: Connection) -> None:
    if not conn.get_execution_options().get("fedbox_write", False):
        conn.exec_driver_sql("BEGIN")
        return
    raw = conn.connection.dbapi_connection
    raw.take_turn()  # type: ignore[union-attr]
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        raw.end_turn()  # type: ignore[union-attr]
        raise


def engine_url(url: str) -> str:
    """``postgresql://...`` names the psycopg 3 driver (SQLAlchemy's default is psycopg2,
    which fedbox does not install)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url.removeprefix(plain)
    return url


def open_engine(url: str) -> Engine:
    """An engine over ``url``; SQLite gets WAL and a busy timeout. The tables are the
    migrations' business (:mod:`fedbox.hub.migrate`)."""
    url = engine_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "factory": _sqlite_turns()}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # The driver's own lazy BEGIN would let a reading transaction later fail to
        # upgrade to writing; writers say so up front (see write_options) and begin
        # IMMEDIATE, waiting their turn instead.
        event.listen(engine, "connect", lambda conn, _r: setattr(conn, "isolation_level", None))
        event.listen(engine, "begin", _sqlite_begin)
    else:
        # Requests run in a thread pool of 40; a few connections per process serve them
        # (PostgreSQL's default limit is 100 connections for all hub processes together).
        engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=12)
    return engine


def lock_schema(conn: Connection) -> None:
    """Make processes that create or migrate the schema at once take turns (SQLite:
    the writing transaction already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7000)"))


WRITERS_TURN = 7001
"""The advisory lock PostgreSQL writers take turns on from appending to the change log
to their commit: the change feed hands out "everything after cursor C", which is only
true if sequence numbers become visible in order (SQLite has one writer anyway)."""


def lock_keys(conn: Connection, keys: Iterable[str]) -> None:
    """:func:`lock_key` for several keys in one round trip, taken in one order (that of
    their hashes) by every transaction, so two never wait for each other in a circle."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "SELECT pg_advisory_xact_lock(7002, h) FROM (SELECT DISTINCT hashtext(k) AS h "
                "FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h OFFSET 0) AS hashes"
            ),
            {"keys": sorted(set(keys))},
        )


def lock_key(conn: Connection, key: str) -> None:
    """Make transactions about the same ``key`` take turns, in every hub process.

    SQLite has one writer at a time anyway; PostgreSQL takes a transaction-scoped
    advisory lock on the key's hash (a collision only makes two keys wait for each other).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7002, hashtext(:key))"), {"key": key})
