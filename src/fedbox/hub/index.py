"""File metadata and the change log: every write is one transaction that appends a change.

A file's version is the sequence number of the change that wrote it, so versions come
from one hub-wide sequence and "changes after cursor C" is a range query. Blobs are made
final before the transaction and their old versions deleted after it; a failed
transaction leaves an orphan blob that the caller discards, never a row without bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, func, insert, select, update

from fedbox.errors import FedboxError, NotFound
from fedbox.hub.blobs import Blobs
from fedbox.hub.notify import announce
from fedbox.hub.schema import WRITE, changes, files, lock_keys, serialize_writers

__all__ = [
    "Change",
    "Condition",
    "FileIndex",
    "FileRow",
    "PreconditionFailed",
    "Quota",
    "QuotaExceeded",
]


class PreconditionFailed(FedboxError):
    """A conditional write found another version than the one it was based on (412)."""


class QuotaExceeded(FedboxError):
    """The write would take its writer over the hub's byte or file quota (413)."""


@dataclass(frozen=True, slots=True)
class FileRow:
    path: str
    version: int
    size: int
    sha256: str
    writer: str
    mtime: float
    blob: str


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    op: str
    """``put``, ``move`` (``old_path`` → ``path``) or ``delete``."""
    path: str
    old_path: str | None
    size: int | None
    sha256: str | None
    writer: str
    time: float


@dataclass(frozen=True, slots=True)
class Quota:
    bytes: int | None = None
    files: int | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """``if_match``: the write applies only to this version; ``if_absent``: only to no file."""

    if_match: int | None = None
    if_absent: bool = False

    def check(self, current: FileRow | None, path: str) -> None:
        if self.if_absent and current is not None:
            raise PreconditionFailed(f"{path} exists (version {current.version})")
        if self.if_match is not None and (current is None or current.version != self.if_match):
            found = "absent" if current is None else f"at version {current.version}"
            raise PreconditionFailed(f"{path} is {found}, not at version {self.if_match}")


ANY = Condition()


def _file(row: Row[Any]) -> FileRow:
    return FileRow(**row._mapping)


class FileIndex:
    """The metadata store. Thread-safe: every call is its own transaction."""

    def __init__(self, engine: Engine, blobs: Blobs, quota: Quota = Quota()) -> None:
        self.engine = engine
        self.blobs = blobs
        self.quota = quota
        self._listeners: list[Callable[[list[Change]], None]] = []

    def subscribe(self, listener: Callable[[list[Change]], None]) -> None:
        """Call ``listener`` with the changes of each committed write (from its thread)."""
        self._listeners.append(listener)

    # --- reads ---------------------------------------------------------------------------

    def get(self, path: str) -> FileRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(files).where(files.c.path == path)).first()
        return None if row is None else _file(row)

    def under(self, prefix: str = "", after: str = "", limit: int | None = None) -> list[FileRow]:
        """Files whose path is below ``prefix`` (a folder; "" for all), by path: those
        after the path ``after``, at most ``limit`` of them (one page of a listing)."""
        query = select(files).order_by(files.c.path).limit(limit)
        if prefix:
            # A range, not LIKE: no wildcard characters in paths to escape. "0" follows "/".
            query = query.where(files.c.path > prefix + "/", files.c.path < prefix + "0")
        if after:
            query = query.where(files.c.path > after)
        with self.engine.connect() as conn:
            return [_file(row) for row in conn.execute(query)]

    def changes(self, after: int, limit: int = 1000) -> list[Change]:
        query = select(changes).where(changes.c.seq > after).order_by(changes.c.seq).limit(limit)
        with self.engine.connect() as conn:
            return [Change(**row._mapping) for row in conn.execute(query)]

    def head(self) -> int:
        """The newest change's sequence number (0 for a new hub)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(changes.c.seq), 0))).scalar_one())

    def total_bytes(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.sum(files.c.size), 0))).scalar_one())

    # --- writes --------------------------------------------------------------------------

    def put(
        self,
        path: str,
        writer: str,
        blob: str,
        size: int,
        sha256: str,
        condition: Condition = ANY,
    ) -> FileRow:
        """Make ``blob`` (already final) the content of ``path``; on error the caller
        still owns the blob and must delete it."""
        now = time.time()
        with self._write(path, *self._quota_keys(writer)) as conn:
            current = self._current(conn, path)
            condition.check(current, path)
            self._check_quota(conn, writer, size, current)
            change = self._append(conn, "put", path, None, size, sha256, writer, now)
            row = FileRow(path, change.seq, size, sha256, writer, now, blob)
            self._store(conn, row, current)
        self._after(current, change)
        return row

    def delete(self, path: str, writer: str, condition: Condition = ANY) -> None:
        with self._write(path) as conn:
            current = self._current(conn, path)
            if current is None:
                raise NotFound(f"{path} does not exist", path)
            condition.check(current, path)
            conn.execute(delete(files).where(files.c.path == path))
            change = self._append(conn, "delete", path, None, None, None, writer, time.time())
        self._after(current, change)

    def move(self, src: str, dst: str, writer: str, condition: Condition = ANY) -> FileRow:
        """Rename ``src`` to ``dst`` in one transaction, replacing any file at ``dst``."""
        now = time.time()
        with self._write(src, dst) as conn:
            current = self._current(conn, src)
            if current is None:
                raise NotFound(f"{src} does not exist", src)
            condition.check(current, src)
            replaced = self._current(conn, dst)
            conn.execute(delete(files).where(files.c.path == src))
            change = self._append(conn, "move", dst, src, current.size, current.sha256, writer, now)
            row = FileRow(dst, change.seq, current.size, current.sha256, writer, now, current.blob)
            self._store(conn, row, replaced)
        self._after(replaced, change)
        return row

    # --- internals -----------------------------------------------------------------------

    @contextmanager
    def _write(self, *keys: str) -> Iterator[Connection]:
        """A writing transaction holding ``keys`` (the paths it reads and writes, so what
        it checked stays true until it commits). Writers take turns hub-wide only from
        :meth:`_append` to the commit: every writer of every hub process waits while a
        turn is held, so the turn holds as few round trips to the database as it can."""
        with self.engine.connect() as conn:
            conn.execution_options(**WRITE)
            with conn.begin():
                lock_keys(conn, keys)
                announce(conn)  # delivered at the commit whenever sent: sent before the turn
                yield conn

    def _quota_keys(self, writer: str) -> tuple[str, ...]:
        """With a quota, a writer's writes also take turns: each checks the sum of all."""
        if self.quota.bytes is None and self.quota.files is None:
            return ()
        return (f"quota {writer}",)

    @staticmethod
    def _current(conn: Connection, path: str) -> FileRow | None:
        row = conn.execute(select(files).where(files.c.path == path)).first()
        return None if row is None else _file(row)

    def _check_quota(
        self, conn: Connection, writer: str, size: int, current: FileRow | None
    ) -> None:
        if self.quota.bytes is None and self.quota.files is None:
            return
        used_bytes, used_files = conn.execute(
            select(func.coalesce(func.sum(files.c.size), 0), func.count()).where(
                files.c.writer == writer
            )
        ).one()
        if current is not None and current.writer == writer:
            used_bytes -= current.size
            used_files -= 1
        if self.quota.bytes is not None and used_bytes + size > self.quota.bytes:
            raise QuotaExceeded(
                f"{writer} would use {used_bytes + size} bytes, over the quota of "
                f"{self.quota.bytes}"
            )
        if self.quota.files is not None and used_files + 1 > self.quota.files:
            raise QuotaExceeded(
                f"{writer} would have {used_files + 1} files, over the quota of {self.quota.files}"
            )

    @staticmethod
    def _append(
        conn: Connection,
        op: str,
        path: str,
        old_path: str | None,
        size: int | None,
        sha256: str | None,
        writer: str,
        now: float,
    ) -> Change:
        """Append the change to the log, taking the hub-wide turn first (sequence numbers
        must become visible in order); the row as written (its listeners get it without
        reading it back). Only the write of the file row and the commit follow."""
        serialize_writers(conn)
        result = conn.execute(
            insert(changes).values(
                op=op,
                path=path,
                old_path=old_path,
                size=size,
                sha256=sha256,
                writer=writer,
                time=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return Change(int(key[0]), op, path, old_path, size, sha256, writer, now)

    @staticmethod
    def _store(conn: Connection, row: FileRow, current: FileRow | None) -> None:
        values = {
            "version": row.version, "size": row.size, "sha256": row.sha256,
            "writer": row.writer, "mtime": row.mtime, "blob": row.blob,
        }  # fmt: skip
        if current is None:
            conn.execute(insert(files).values(path=row.path, **values))
        else:
            conn.execute(update(files).where(files.c.path == row.path).values(**values))

    def _after(self, replaced: FileRow | None, change: Change) -> None:
        if replaced is not None:
            self.blobs.delete(replaced.blob)
        for listener in self._listeners:
            listener([change])
