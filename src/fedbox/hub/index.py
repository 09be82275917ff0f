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

from sqlalchemy import Connection, Engine, Row, bindparam, delete, func, insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from fedbox.errors import FedboxError, NotFound
from fedbox.hub.blobs import Blobs
from fedbox.hub.notify import CHANNEL
from fedbox.hub.schema import WRITE, WRITERS_TURN, changes, files, lock_keys

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


@dataclass(frozen=True, slots=True)
class _Pending:
    """A change about to be appended, and the file row it leaves at ``path`` (``blob``;
    None for a delete). ``replaced``: the row it replaces, whose blob goes after."""

    op: str
    path: str
    old_path: str | None
    size: int | None
    sha256: str | None
    writer: str
    time: float
    blob: str | None
    replaced: FileRow | None


_UNCOMMITTED = -1
"""The version of a file row an earlier write of the same transaction leaves: no
condition a client sends can have seen it."""


class _Batch:
    """The writes of one :meth:`FileIndex.put_many` before they commit: each item sees
    those before it (their rows and their share of the quota)."""

    def __init__(self, conn: Connection, writer: str, paths: list[str], usage: list[int]) -> None:
        self.writer = writer
        self.usage = usage
        self.pending: list[_Pending] = []
        rows = conn.execute(_ROWS, {"paths": sorted(set(paths))})  # one query for all
        self._rows: dict[str, FileRow | None] = dict.fromkeys(paths)
        self._rows.update((row.path, _file(row)) for row in rows)

    def current(self, path: str) -> FileRow | None:
        return self._rows[path]

    def put(self, item: NewFile, current: FileRow | None, now: float) -> _Pending:
        pending = _Pending("put", item.path, None, item.size, item.sha256, self.writer, now,
                           item.blob, current)  # fmt: skip
        self.pending.append(pending)
        self._rows[item.path] = FileRow(item.path, _UNCOMMITTED, item.size, item.sha256,
                                        self.writer, now, item.blob)  # fmt: skip
        if current is not None and current.writer == self.writer:
            self.usage[0] -= current.size
            self.usage[1] -= 1
        self.usage[0] += item.size
        self.usage[1] += 1
        return pending


def _row(change: Change, pending: _Pending) -> FileRow:
    assert pending.blob is not None and change.size is not None and change.sha256 is not None
    return FileRow(change.path, change.seq, change.size, change.sha256, change.writer,
                   change.time, pending.blob)  # fmt: skip


def _last_per_path(pending: list[_Pending], seqs: list[int]) -> list[tuple[_Pending, int]]:
    """Each written path's last write (the row it leaves), with its sequence number."""
    last = {p.path: (p, seq) for p, seq in zip(pending, seqs, strict=True) if p.blob is not None}
    return list(last.values())


# Built once: a statement given its values as parameters is compiled once (cached), not
# rebuilt per file; a burst of small files spends most of its hub time on these.
_ROW = select(files).where(files.c.path == bindparam("path"))
_ROWS = select(files).where(files.c.path.in_(bindparam("paths", expanding=True)))
_ROW_VALUES = ("version", "size", "sha256", "writer", "mtime", "blob")
_APPEND = insert(changes).returning(changes.c.seq, sort_by_parameter_order=True)
_UPSERT = sqlite_insert(files)
_UPSERT = _UPSERT.on_conflict_do_update(
    index_elements=[files.c.path],
    set_={name: _UPSERT.excluded[name] for name in _ROW_VALUES},
)


def _file(row: Row[Any]) -> FileRow:
    return FileRow(**row._mapping)


def _commit_sqlite(conn: Connection, pending: list[_Pending]) -> list[int]:
    """SQLite has one writer at a time (BEGIN IMMEDIATE): the turn is already held. One
    statement appends every change, one writes each path's last row."""
    seqs = conn.execute(
        _APPEND,
        [
            {"op": p.op, "path": p.path, "old_path": p.old_path, "size": p.size,
             "sha256": p.sha256, "writer": p.writer, "time": p.time}
            for p in pending
        ],
    ).scalars().all()  # fmt: skip
    finals = [
        {"path": p.path, "version": seq, "size": p.size, "sha256": p.sha256,
         "writer": p.writer, "mtime": p.time, "blob": p.blob}
        for p, seq in _last_per_path(pending, list(seqs))
    ]  # fmt: skip
    if finals:
        conn.execute(_UPSERT, finals)
    return [int(seq) for seq in seqs]


_IN_TURN = """
WITH turn AS (SELECT pg_advisory_xact_lock(%(turn)s) AS taken, pg_notify(%(channel)s, '')),
numbered AS (
    SELECT nextval(pg_get_serial_sequence('changes', 'seq')) AS seq, c.*
    FROM (
        SELECT c.* FROM turn, unnest(
            %(op)s::text[], %(path)s::text[], %(old_path)s::text[], %(size)s::bigint[],
            %(sha256)s::text[], %(writer)s::text[], %(time)s::float8[]
        ) WITH ORDINALITY AS c(op, path, old_path, size, sha256, writer, time, n)
        ORDER BY c.n
    ) AS c
),
appended AS (
    INSERT INTO changes (seq, op, path, old_path, size, sha256, writer, time)
    SELECT seq, op, path, old_path, size, sha256, writer, time FROM numbered
    RETURNING seq, path
),
stored AS (
    INSERT INTO files (path, version, size, sha256, writer, mtime, blob)
    SELECT f.path, (SELECT max(a.seq) FROM appended AS a WHERE a.path = f.path),
           f.size, f.sha256, f.writer, f.mtime, f.blob
    FROM unnest(
        %(f_path)s::text[], %(f_size)s::bigint[], %(f_sha256)s::text[],
        %(f_writer)s::text[], %(f_mtime)s::float8[], %(f_blob)s::text[]
    ) AS f(path, size, sha256, writer, mtime, blob)
    ON CONFLICT (path) DO UPDATE SET version = EXCLUDED.version, size = EXCLUDED.size,
        sha256 = EXCLUDED.sha256, writer = EXCLUDED.writer, mtime = EXCLUDED.mtime,
        blob = EXCLUDED.blob
)
SELECT seq FROM numbered ORDER BY n
"""


def commit_in_turn(conn: Connection, pending: list[_Pending]) -> list[int]:
    """PostgreSQL: the turn, the log rows, the file rows and the notification every hub
    process listens for (delivered at the commit) in one statement, its COMMIT sent
    behind it before its answer comes back; the sequence numbers, in order."""
    finals = [p for p, _ in _last_per_path(pending, [0] * len(pending))]
    params = {
        "turn": WRITERS_TURN,
        "channel": CHANNEL,
        "op": [p.op for p in pending],
        "path": [p.path for p in pending],
        "old_path": [p.old_path for p in pending],
        "size": [p.size for p in pending],
        "sha256": [p.sha256 for p in pending],
        "writer": [p.writer for p in pending],
        "time": [p.time for p in pending],
        "f_path": [p.path for p in finals],
        "f_size": [p.size for p in finals],
        "f_sha256": [p.sha256 for p in finals],
        "f_writer": [p.writer for p in finals],
        "f_mtime": [p.time for p in finals],
        "f_blob": [p.blob for p in finals],
    }
    raw: Any = conn.connection.dbapi_connection
    with raw.pipeline():
        cursor = raw.cursor()
        cursor.execute(_IN_TURN, params)
        raw.commit()  # queued behind the statement: the turn ends without a round trip
    return [int(row[0]) for row in cursor.fetchall()]


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
        caller still owns the blobs of refused items."""
        now = time.time()
        outcome: list[_Pending | PreconditionFailed | QuotaExceeded] = []
        with self._write(*(item.path for item in items), *self._quota_keys(writer)) as conn:
            paths = [item.path for item in items]
            batch = _Batch(conn, writer, paths, self._usage(conn, writer))
            for item in items:
                current = batch.current(item.path)
                try:
                    item.condition.check(current, item.path)
                    self._check_quota(writer, item.size, current, batch.usage)
                except (PreconditionFailed, QuotaExceeded) as exc:
                    outcome.append(exc)
                    continue
                outcome.append(batch.put(item, current, now))
            appended = self._commit(conn, batch.pending)
        rows = iter(
            _row(change, pending) for change, pending in zip(appended, batch.pending, strict=True)
        )
        results = [next(rows) if isinstance(o, _Pending) else o for o in outcome]
        if appended:
            self._after([pending.replaced for pending in batch.pending], appended)
        return results

    def delete(self, path: str, writer: str, condition: Condition = ANY) -> None:
        with self._write(path) as conn:
            current = self._current(conn, path)
            if current is None:
                raise NotFound(f"{path} does not exist", path)
            condition.check(current, path)
            conn.execute(delete(files).where(files.c.path == path))
            pending = _Pending("delete", path, None, None, None, writer, time.time(), None, current)
            (change,) = self._commit(conn, [pending])
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
            pending = _Pending("move", dst, src, current.size, current.sha256, writer, now,
                               current.blob, replaced)  # fmt: skip
            (change,) = self._commit(conn, [pending])
        self._after([replaced], [change])
        return _row(change, pending)

    # --- internals -----------------------------------------------------------------------

    @contextmanager
    def _write(self, *keys: str) -> Iterator[Connection]:
        """A writing transaction holding ``keys`` (the paths it reads and writes, so what
        it checked stays true until it commits). Writers take turns hub-wide only from
        :meth:`_commit` to the commit: every writer of every hub process waits while a
        turn is held, so the turn holds as few round trips to the database as it can."""
        with self.engine.connect() as conn:
            conn.execution_options(**WRITE)
            with conn.begin():
                lock_keys(conn, keys)
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

    def _usage(self, conn: Connection, writer: str) -> list[int]:
        """[bytes, files] the writer's files hold, read once per transaction with a quota."""
        if self.quota.bytes is None and self.quota.files is None:
            return [0, 0]
        used_bytes, used_files = conn.execute(
            select(func.coalesce(func.sum(files.c.size), 0), func.count()).where(
                files.c.writer == writer
            )
        ).one()
        return [int(used_bytes), int(used_files)]

    def _check_quota(
        self, writer: str, size: int, current: FileRow | None, usage: list[int]
    ) -> None:
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

    @staticmethod
    def _commit(conn: Connection, pending: list[_Pending]) -> list[Change]:
        """Append the changes to the log and leave each path's last file row, taking the
        hub-wide turn first (sequence numbers must become visible in order); the changes
        as written (listeners get them without reading them back).

        On PostgreSQL the turn is taken, the log appended and the file rows written by
        one statement, and the commit is queued right behind it (pipeline mode): the turn
        lasts the server's work alone. Held across round trips, it also lasted while each
        writer's thread waited for Python's GIL, and a busy hub's writers queued on it."""
        if not pending:
            return []
        if conn.dialect.name == "postgresql":
            seqs = commit_in_turn(conn, pending)
        else:
            seqs = _commit_sqlite(conn, pending)
        return [
            Change(seq, p.op, p.path, p.old_path, p.size, p.sha256, p.writer, p.time)
            for p, seq in zip(pending, seqs, strict=True)
        ]

    def _after(self, replaced: Sequence[FileRow | None], appended: list[Change]) -> None:
        """Drop the replaced versions' blobs and hand the listeners the changes one
        transaction appended, as written (no reading them back)."""
        for old in replaced:
            if old is not None:
                self.blobs.delete(old.blob)
        for listener in self._listeners:
            listener(appended)
