"""File metadata and the change log: every write is one transaction that appends a change.

A file's version is the sequence number of the change that wrote it, so versions come
from one hub-wide sequence and "changes after cursor C" is a range query. Blobs are made
final before the transaction and their old versions deleted after it; a failed
transaction leaves an orphan blob that the caller discards, never a row without bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, delete, func, insert, select, update

from fedbox.errors import FedboxError, NotFound
from fedbox.hub.blobs import Blobs
from fedbox.hub.notify import announce
from fedbox.hub.schema import WRITE, changes, files, lock_keys, serialize_writers

__all__ = [
    "Change",
    "Condition",
    "FileIndex",
    "FileRow",
    "NewFile",
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


@dataclass(frozen=True, slots=True)
class NewFile:
    """One write of :meth:`FileIndex.put_many`: ``blob`` (already final) for ``path``."""

    path: str
    blob: str
    size: int
    sha256: str
    condition: Condition = ANY


# Built once: a statement given its values as parameters is compiled once (cached), not
# rebuilt per file; a burst of small files spends most of its hub time on these.
_ROW = select(files).where(files.c.path == bindparam("path"))
_ROWS = select(files).where(files.c.path.in_(bindparam("paths", expanding=True)))
_APPEND = insert(changes)
_APPEND_MANY = insert(changes).returning(changes.c.seq, sort_by_parameter_order=True)
_INSERT = insert(files)
_UPDATE = update(files).where(files.c.path == bindparam("key"))


def _file(row: Row[Any]) -> FileRow:
    return FileRow(**row._mapping)


def _values(row: FileRow) -> dict[str, Any]:
    """The ``files`` columns of ``row`` but its key: what an update sets."""
    return {
        "version": row.version, "size": row.size, "sha256": row.sha256,
        "writer": row.writer, "mtime": row.mtime, "blob": row.blob,
    }  # fmt: skip


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
            row = conn.execute(_ROW, {"path": path}).first()
        return None if row is None else _file(row)

    def get_many(self, paths: Sequence[str]) -> dict[str, FileRow]:
        """The current rows of those of ``paths`` that exist, in one query."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(files).where(files.c.path.in_(set(paths))))
            return {row.path: _file(row) for row in rows}

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
        (result,) = self.put_many(writer, [NewFile(path, blob, size, sha256, condition)])
        if isinstance(result, FedboxError):
            raise result
        return result

    def put_many(
        self, writer: str, items: Sequence[NewFile]
    ) -> list[FileRow | PreconditionFailed | QuotaExceeded]:
        """Each item written as :meth:`put` writes it, in order, all in one transaction
        (one commit, one notification for a burst of small files); an item its condition
        or the quota refuses is answered with that error and the others still apply. The
        caller still owns the blobs of refused items.

        The statements are per run of items, not per item: one query reads the current
        rows of every path, and each run (items up to a path written twice) appends its
        changes and writes its rows in one statement each. A burst of small files spent
        most of its hub time on per-file statements."""
        now = time.time()
        results: dict[int, FileRow | PreconditionFailed | QuotaExceeded] = {}
        replaced: list[FileRow | None] = []
        appended: list[Change] = []
        with self._write(*(item.path for item in items), *self._quota_keys(writer)) as conn:
            current = self._current_many(conn, [item.path for item in items])
            usage = self._usage(conn, writer)
            run: list[tuple[int, NewFile, FileRow | None]] = []
            in_run: set[str] = set()
            for i, item in enumerate(items):
                if item.path in in_run:  # its condition is checked against the run's write
                    self._write_run(conn, writer, now, run, current, results, replaced, appended)
                    run, in_run = [], set()
                was = current.get(item.path)
                try:
                    item.condition.check(was, item.path)
                    if usage is not None:
                        usage = self._check_quota(writer, usage, item.size, was)
                except (PreconditionFailed, QuotaExceeded) as exc:
                    results[i] = exc
                    continue
                run.append((i, item, was))
                in_run.add(item.path)
            self._write_run(conn, writer, now, run, current, results, replaced, appended)
        if appended:
            self._after(replaced, appended)
        return [results[i] for i in range(len(items))]

    def delete(self, path: str, writer: str, condition: Condition = ANY) -> None:
        with self._write(path) as conn:
            current = self._current(conn, path)
            if current is None:
                raise NotFound(f"{path} does not exist", path)
            condition.check(current, path)
            conn.execute(delete(files).where(files.c.path == path))
            change = self._append(conn, "delete", path, None, None, None, writer, time.time())
        self._after([current], [change])

    def move(
        self,
        src: str,
        dst: str,
        writer: str,
        condition: Condition = ANY,
        dst_condition: Condition = ANY,
    ) -> FileRow:
        """Rename ``src`` to ``dst`` in one transaction, replacing any file at ``dst``;
        ``dst_condition`` keeps it from replacing a version its mover never saw."""
        now = time.time()
        with self._write(src, dst) as conn:
            current = self._current(conn, src)
            if current is None:
                raise NotFound(f"{src} does not exist", src)
            condition.check(current, src)
            replaced = self._current(conn, dst)
            dst_condition.check(replaced, dst)
            conn.execute(delete(files).where(files.c.path == src))
            change = self._append(conn, "move", dst, src, current.size, current.sha256, writer, now)
            row = FileRow(dst, change.seq, current.size, current.sha256, writer, now, current.blob)
            self._store(conn, row, replaced)
        self._after([replaced], [change])
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
        row = conn.execute(_ROW, {"path": path}).first()
        return None if row is None else _file(row)

    @staticmethod
    def _current_many(conn: Connection, paths: Sequence[str]) -> dict[str, FileRow]:
        """The current rows of those of ``paths`` that exist, in one query."""
        rows = conn.execute(_ROWS, {"paths": sorted(set(paths))})
        return {row.path: _file(row) for row in rows}

    def _usage(self, conn: Connection, writer: str) -> tuple[int, int] | None:
        """The bytes and files ``writer`` has (None without a quota: nothing to count)."""
        if self.quota.bytes is None and self.quota.files is None:
            return None
        used_bytes, used_files = conn.execute(
            select(func.coalesce(func.sum(files.c.size), 0), func.count()).where(
                files.c.writer == writer
            )
        ).one()
        return int(used_bytes), int(used_files)

    def _check_quota(
        self, writer: str, usage: tuple[int, int], size: int, current: FileRow | None
    ) -> tuple[int, int]:
        """QuotaExceeded unless ``writer`` (using ``usage``) may write ``size`` bytes over
        ``current``; the usage once it has."""
        used_bytes, used_files = usage
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
        return used_bytes + size, used_files + 1

    @staticmethod
    def _write_run(
        conn: Connection,
        writer: str,
        now: float,
        run: list[tuple[int, NewFile, FileRow | None]],
        current: dict[str, FileRow],
        results: dict[int, FileRow | PreconditionFailed | QuotaExceeded],
        replaced: list[FileRow | None],
        appended: list[Change],
    ) -> None:
        """Append the changes of ``run`` (items at distinct paths, each over its current
        row) and write their rows: three statements at most, whatever its length. The
        sequence numbers come back in the items' order (``sort_by_parameter_order``); as
        the paths differ, which item got the smaller one does not matter. The results,
        ``current`` and the lists for :meth:`_after` learn what was written."""
        if not run:
            return
        if not appended:
            serialize_writers(conn)  # the hub-wide turn, held from here to the commit
        seqs = conn.execute(
            _APPEND_MANY,
            [
                {"op": "put", "path": item.path, "old_path": None, "size": item.size,
                 "sha256": item.sha256, "writer": writer, "time": now}
                for _, item, _ in run
            ],
        ).scalars().all()  # fmt: skip
        new_rows, updated_rows = [], []
        for (i, item, was), seq in zip(run, seqs, strict=True):
            row = FileRow(item.path, seq, item.size, item.sha256, writer, now, item.blob)
            if was is None:
                new_rows.append({"path": row.path, **_values(row)})
            else:
                updated_rows.append({"key": row.path, **_values(row)})
            results[i] = current[item.path] = row
            replaced.append(was)
            appended.append(Change(seq, "put", item.path, None, item.size, item.sha256,
                                   writer, now))  # fmt: skip
        if new_rows:
            conn.execute(_INSERT, new_rows)
        if updated_rows:
            conn.execute(_UPDATE, updated_rows)

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
            _APPEND,
            {"op": op, "path": path, "old_path": old_path, "size": size, "sha256": sha256,
             "writer": writer, "time": now},
        )  # fmt: skip
        key = result.inserted_primary_key
        assert key is not None
        return Change(int(key[0]), op, path, old_path, size, sha256, writer, now)

    @staticmethod
    def _store(conn: Connection, row: FileRow, current: FileRow | None) -> None:
        values = _values(row)
        if current is None:
            conn.execute(_INSERT, {"path": row.path, **values})
        else:
            conn.execute(_UPDATE, {"key": row.path, **values})

    def _after(self, replaced: Sequence[FileRow | None], appended: list[Change]) -> None:
        """Drop the replaced versions' blobs and hand the listeners the changes one
        transaction appended, as written (no reading them back)."""
        for old in replaced:
            if old is not None:
                self.blobs.delete(old.blob)
        for listener in self._listeners:
            listener(appended)
