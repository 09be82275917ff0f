"""The durable record of a run: every exchange the ServerApp made through the grid, in order.

One SQLite file per run, ``{state_dir}/runs/{run name}.sqlite``, in the aggregator's
private state dir. A push is committed before its messages are sent and a pull when its
replies are handed to the ServerApp, so after a crash at any point the record says what
the ServerApp asked for and what it was given; :mod:`fedbox.fl.replay` replays it to a
restarted ServerApp and :mod:`fedbox.fl.history` reads it for ``fedbox runs`` and the
dashboard. WAL mode lets other processes read it while the aggregator writes.

While the aggregator works on a run it holds an exclusive ``flock`` on
``{run name}.lock``: a second aggregator on the same run is refused, and a reader tells
a run in progress (lock held) from one whose process died (status still ``running``,
nobody holding the lock: ``interrupted``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from fedbox.datasite.workspace import create_private
from fedbox.errors import FedboxError

__all__ = [
    "ExchangeRow",
    "MessageRow",
    "RunBusy",
    "RunFinished",
    "RunInfo",
    "RunNotFound",
    "RunRecord",
    "connect_reader",
    "contents_dir",
    "find_resumable",
    "is_held",
    "read_content",
    "record_path",
    "runs_dir",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    name TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    app TEXT NOT NULL,
    role TEXT NOT NULL,
    seed INTEGER NOT NULL,
    run_config TEXT NOT NULL,
    datasites TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,
    error TEXT,
    restarts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS exchanges (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    round TEXT NOT NULL,
    asked TEXT NOT NULL,
    answer TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    pushed INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    email TEXT NOT NULL,
    message_type TEXT NOT NULL,
    round TEXT NOT NULL,
    content TEXT,
    sent REAL NOT NULL,
    outcome TEXT,
    settled INTEGER,
    replied REAL,
    error TEXT,
    metrics TEXT
);
CREATE INDEX IF NOT EXISTS messages_round ON messages (round);
CREATE TABLE IF NOT EXISTS replies (id TEXT PRIMARY KEY, data BLOB);
"""
"""``exchanges``: what the ServerApp asked (``asked``) and was given (``answer``), JSON.
``messages``: one row per pushed message; ``outcome`` (``reply``, ``error``, ``timeout``)
and ``settled`` (the exchange that handed it over or gave up on it) once known.
``replies``: each reply the ServerApp was given, Flower protobuf, by its request's id;
NULL for a large reply, which a replay reads again from the store (its response file)."""

Buffer: TypeAlias = bytes | bytearray | memoryview
Content: TypeAlias = tuple[Sequence[Buffer], int]
"""A pushed content serialised: its parts (array data as views) and its size.

Each distinct content is kept once, by digest, in ``{run name}.contents/{digest}`` beside
the record (what ``runs export`` reads). Written after the push is committed and not
fsync'd: replay needs only the digest, and a model's fsync would be most of a round's
time; a power cut may lose the last one (a killed process does not: writes are atomic).
"""

SUFFIX = ".sqlite"
PAGE_SIZE = 16384
"""Of a new record's database (SQLite's default is 4096)."""
LOCK_SUFFIX = ".lock"


class RunNotFound(FedboxError):
    """No record of a run by that name in this state dir."""


class RunFinished(FedboxError):
    """The run has finished; it is not started again under its name without ``--fresh``."""


class RunBusy(FedboxError):
    """Another aggregator process is working on this run now."""


def contents_dir(record: Path) -> Path:
    """Where the record at ``record`` keeps the contents pushed (see :data:`Content`)."""
    return record.with_suffix(".contents")


def read_content(record: Path, digest: str) -> bytes | None:
    """A pushed content kept beside the record, None if it is not there."""
    try:
        return (contents_dir(record) / digest).read_bytes()
    except FileNotFoundError:
        return None


def runs_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "runs"


def record_path(state_dir: Path, name: str) -> Path:
    if not name or "/" in name or name.startswith(".") or "\x00" in name:
        raise RunNotFound(f"{name!r} is not a run name")
    return runs_dir(state_dir) / f"{name}{SUFFIX}"


def is_held(state_dir: Path, name: str) -> bool:
    """True while an aggregator process holds the run's lock (it is working on it)."""
    lock = record_path(state_dir, name).with_suffix(LOCK_SUFFIX)
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a shared lock we may have taken
    return False


def connect_reader(path: Path) -> sqlite3.Connection:
    """A connection for reading a record another process may be writing (never creates)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=10, isolation_level=None)
    except sqlite3.OperationalError as exc:
        raise RunNotFound(f"no run record at {path}") from exc
    conn.row_factory = sqlite3.Row
    return conn


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The ``run`` row: who the run is and how it was started."""

    name: str
    key: str
    app: str
    role: str
    seed: int
    run_config: dict[str, Any]
    datasites: tuple[str, ...]
    started: float
    finished: float | None
    status: str
    error: str | None
    restarts: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunInfo:
        values = dict(row)
        values["run_config"] = json.loads(values["run_config"])
        values["datasites"] = tuple(json.loads(values["datasites"]))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ExchangeRow:
    """One call the ServerApp made: ``kind`` is ``nodes``, ``push``, ``pull`` or ``receive``."""

    seq: int
    kind: str
    round: str
    asked: Any
    answer: Any


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One pushed message, for re-attaching to it and for reading the run's history."""

    id: str
    pushed: int
    node_id: int
    email: str
    message_type: str
    round: str
    content: str | None
    outcome: str | None
    settled: int | None


def find_resumable(state_dir: Path, key: str) -> str | None:
    """The newest run started with ``key`` that did not finish, if any."""
    best: tuple[float, str] | None = None
    folder = runs_dir(state_dir)
    if not folder.is_dir():
        return None
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            conn = connect_reader(path)
            try:
                row = conn.execute("SELECT name, key, started, status FROM run").fetchone()
            finally:
                conn.close()
        except (sqlite3.Error, RunNotFound):
            continue
        if row is None or row["key"] != key or row["status"] == "finished":
            continue
        if best is None or row["started"] > best[0]:
            best = (row["started"], row["name"])
    return None if best is None else best[1]


class RunRecord:
    """The aggregator's handle on one run's record: appends exchanges, holds the lock.

    Safe to share between threads (Flower's legacy strategies call the grid from
    several): one connection behind a lock. Commits are synchronous (``FULL``), so what
    a call returned has reached the disk before the message it describes is sent.
    """

    def __init__(self, path: Path, lock_fd: int, conn: sqlite3.Connection) -> None:
        self.path = path
        self._lock_fd = lock_fd
        self._conn = conn
        self._lock = threading.Lock()
        row = conn.execute("SELECT * FROM run").fetchone()
        if row is None:
            raise RunNotFound(f"{path} holds no run")
        self.info = RunInfo.from_row(row)

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        state_dir: Path,
        name: str,
        *,
        key: str,
        app: str,
        seed: int,
        run_config: dict[str, Any],
        datasites: Sequence[str],
    ) -> RunRecord:
        """A new record (an older one of that name is moved aside, to ``.replaced-*``)."""
        path = record_path(state_dir, name)
        Path(state_dir).mkdir(
            parents=True, exist_ok=True, mode=0o700
        )  # private, as connect makes it
        path.parent.mkdir(exist_ok=True, mode=0o700)
        lock_fd = _take_lock(path, name)
        try:
            if path.exists():
                aside = path.with_name(f".{path.name}.replaced-{int(time.time())}")
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(f"{path}{suffix}", f"{aside}{suffix}")
                with contextlib.suppress(FileNotFoundError):
                    os.replace(contents_dir(path), contents_dir(aside))
            conn = _open(path)
            with _transaction(conn):
                conn.execute(
                    "INSERT INTO run (name, key, app, role, seed, run_config, datasites,"
                    " started, status) VALUES (?, ?, ?, 'aggregator', ?, ?, ?, ?, 'running')",
                    (
                        name,
                        key,
                        app,
                        seed,
                        json.dumps(run_config, sort_keys=True),
                        json.dumps(list(datasites)),
                        time.time(),
                    ),
                )
            return cls(path, lock_fd, conn)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def reopen(cls, state_dir: Path, name: str) -> RunRecord:
        """The existing record of ``name``, to resume it (status back to ``running``);
        RunFinished if the run has finished."""
        path = record_path(state_dir, name)
        if not path.exists():
            raise RunNotFound(f"no run named {name} in {runs_dir(state_dir)}")
        lock_fd = _take_lock(path, name)
        try:
            conn = _open(path)
            row = conn.execute("SELECT status FROM run").fetchone()
            if row is not None and row["status"] == "finished":
                conn.close()
                raise RunFinished(
                    f"run {name} has finished (see `fedbox runs show {name}`); start a new "
                    "run under a new app name, or pass --fresh to run it again under this "
                    "one (its datasites then continue their state of it)"
                )
            with _transaction(conn):
                conn.execute(
                    "UPDATE run SET status='running', finished=NULL, error=NULL,"
                    " restarts=restarts+1"
                )
            return cls(path, lock_fd, conn)
        except BaseException:
            os.close(lock_fd)
            raise

    def close(self) -> None:
        with self._lock:
            if self._lock_fd < 0:
                return
            self._conn.close()
            os.close(self._lock_fd)
            self._lock_fd = -1

    # -- reading (for replay) -------------------------------------------------------------

    def exchanges(self) -> list[ExchangeRow]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM exchanges ORDER BY seq").fetchall()
        return [
            ExchangeRow(
                r["seq"], r["kind"], r["round"], json.loads(r["asked"]), json.loads(r["answer"])
            )
            for r in rows
        ]

    def messages(self) -> dict[str, MessageRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, pushed, node_id, email, message_type, round, content, outcome,"
                " settled FROM messages"
            ).fetchall()
        return {r["id"]: MessageRow(**dict(r)) for r in rows}

    def reply(self, msg_id: str) -> bytes | None:
        """The recorded reply to ``msg_id``; None if it is to be read from the store."""
        with self._lock:
            row = self._conn.execute("SELECT data FROM replies WHERE id=?", (msg_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"the record of {self.info.name} holds no reply to {msg_id}")
        return None if row["data"] is None else bytes(row["data"])

    # -- writing ------------------------------------------------------------------------

    def add_exchange(self, kind: str, asked: Any, answer: Any, round: str = "") -> int:
        """Append one exchange that carries no message rows; its sequence number."""
        with self._lock, _transaction(self._conn):
            return self._insert_exchange(kind, asked, answer, round)

    def add_push(
        self,
        asked: list[Any],
        ids: list[str],
        messages: list[tuple[str, int, str, str, str, str | None]],
        contents: dict[str, Content],
        round: str,
    ) -> int:
        """Append a push before it is sent: the exchange, its messages
        ``(id, node_id, email, message_type, round, content digest)`` and the contents
        not recorded yet."""
        now = time.time()
        with self._lock, _transaction(self._conn):
            seq = self._insert_exchange("push", asked, ids, round)
            self._conn.executemany(
                "INSERT INTO messages (id, pushed, node_id, email, message_type, round,"
                " content, sent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(m[0], seq, *m[1:], now) for m in messages],
            )
        for digest, (parts, _) in contents.items():
            self._add_content(digest, parts)
        return seq

    def _add_content(self, digest: str, parts: Sequence[Buffer]) -> None:
        """Keep a content unless it is kept, written part by part (never joined)."""
        folder = contents_dir(self.path)
        target = folder / digest
        if target.exists():
            return
        folder.mkdir(exist_ok=True, mode=0o700)
        tmp = folder / f".{digest}.tmp-{os.getpid()}-{threading.get_ident()}"
        with open(create_private(tmp), "wb") as f:
            for part in parts:
                f.write(part)
        os.replace(tmp, target)

    def keep_replies(self, replies: list[tuple[str, bytes | None]]) -> None:
        """Keep each reply ``(request id, Flower protobuf, or None: in the store)`` as it
        is taken, while the round still waits for the others, so the round's end does
        not write them all at once (issue 20: a tenth of a round at 1,000 clients).

        A reply is read back only for an exchange :meth:`add_replies` recorded; one kept
        by a process that died before that is never read, and is replaced when the reply
        is taken again. So its commit needs no fsync of its own: the exchange's makes it
        durable.
        """
        with self._lock, _transaction(self._conn, durable=False):
            self._conn.executemany(
                "INSERT OR REPLACE INTO replies (id, data) VALUES (?, ?)", replies
            )

    def add_replies(
        self,
        kind: str,
        asked: Any,
        answer: Any,
        replies: list[tuple[str, str, str | None, dict[str, float]]],
        timeouts: Sequence[str] = (),
    ) -> int:
        """Append a pull or receive with the replies it handed over, each
        ``(request id, outcome, error reason, metrics)``, and the requests it gave up on.
        The replies themselves were kept as they came (:meth:`keep_replies`)."""
        now = time.time()
        with self._lock, _transaction(self._conn):
            seq = self._insert_exchange(kind, asked, answer, "")
            self._conn.executemany(
                "UPDATE messages SET outcome=?, settled=?, replied=?, error=?, metrics=?"
                " WHERE id=?",
                [
                    (outcome, seq, now, error, json.dumps(metrics), msg_id)
                    for msg_id, outcome, error, metrics in replies
                ],
            )
            self._conn.executemany(
                "UPDATE messages SET outcome='timeout', settled=? WHERE id=?",
                [(seq, msg_id) for msg_id in timeouts],
            )
        return seq

    def set_status(self, status: str, error: str | None = None) -> None:
        finished = time.time() if status == "finished" else None
        with self._lock, _transaction(self._conn):
            self._conn.execute(
                "UPDATE run SET status=?, error=?, finished=?", (status, error, finished)
            )

    def _insert_exchange(self, kind: str, asked: Any, answer: Any, round: str) -> int:
        cur = self._conn.execute(
            "INSERT INTO exchanges (kind, round, asked, answer, at) VALUES (?, ?, ?, ?, ?)",
            (kind, round, json.dumps(asked), json.dumps(answer), time.time()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid


def _take_lock(path: Path, name: str) -> int:
    fd = os.open(create_private(path.with_suffix(LOCK_SUFFIX)), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunBusy(f"run {name} is in progress in another process") from None
    return fd


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(create_private(path), check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=10000")
    # Before WAL, so a new record takes it: a kept reply (tens of KB) is then a few pages
    # written, not a dozen (issue 20: 75 against 120 µs of CPU for a 40 KB reply).
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    return conn


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, *, durable: bool = True) -> Iterator[None]:
    """One transaction; committed with an fsync unless not ``durable`` (then it becomes
    durable with the next one that is: they share the write-ahead log)."""
    if not durable:
        conn.execute("PRAGMA synchronous=NORMAL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        if not durable:
            conn.execute("PRAGMA synchronous=FULL")
