"""Request files waiting for a handler thread: shared fairly between senders, held in
bounded memory, and found again by listing when an event was missed or a handling failed.

Fair (issue 11.7): each sender folder has its own queue and the threads take from the
folders in turn, so a flood from one sender delays another's request by about one file
per thread, whatever the flood's size.

Bounded: a queue holds at most ``depth`` files. What does not fit stays in the store and
its folder is marked; once the queue is empty, a thread lists the folder and queues the
next ``depth`` files after a cursor (paths in name order), skipping those already
handled. Memory is then the queues and one listing at a time, and a flooded folder is
listed once per ``depth`` files handled.

Nothing waits for a restart (issue 11.2): every ``rescan_interval`` seconds each inbox
folder is listed again the same way, which finds files the watcher never reported (a
link made in place) and requests whose handling failed before the claim (a full disk).
Requests already handled are skipped by ``settled`` without being opened, except in the
listing at start, which queues every file as the backlog always did: there the handler's
own checks decide, and may run an interrupted request again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fedbox.datasite.paths import MessagePath
from fedbox.rpc.workers import WorkerPool

__all__ = [
    "DEFAULT_QUEUE_DEPTH",
    "DEFAULT_RESCAN_INTERVAL",
    "Backlog",
    "default_queue_depth",
    "default_rescan_interval",
]

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_DEPTH = 4096
"""Request files queued in memory per sender folder (a few MB): a folder holding more is
listed again each time its queue runs empty, so a larger depth means fewer listings."""
DEFAULT_RESCAN_INTERVAL = 30.0
"""Seconds between listings of every inbox while an app serves (issue 11.2)."""


def default_queue_depth(value: int | None = None) -> int:
    """``value``, else ``$FEDBOX_QUEUE_DEPTH``, else :data:`DEFAULT_QUEUE_DEPTH`."""
    if value is None:
        env = os.environ.get("FEDBOX_QUEUE_DEPTH")
        value = int(env) if env else DEFAULT_QUEUE_DEPTH
    if value < 1:
        raise ValueError(f"the queue depth must be at least 1, not {value}")
    return value


def default_rescan_interval(value: float | None = None) -> float:
    """``value``, else ``$FEDBOX_RESCAN_INTERVAL``, else :data:`DEFAULT_RESCAN_INTERVAL`."""
    if value is None:
        env = os.environ.get("FEDBOX_RESCAN_INTERVAL")
        value = float(env) if env else DEFAULT_RESCAN_INTERVAL
    if not value > 0:
        raise ValueError(f"the rescan interval must be positive, not {value}")
    return value


@dataclass(eq=False, slots=True)
class _Folder:
    """One sender folder's share of the work."""

    queue: deque[MessagePath] = field(default_factory=deque)
    stale: bool = False
    """Files may wait in the store that are not queued: list the folder."""
    listing: bool = False
    cursor: str | None = None
    """The current pass over the folder queued the files up to this path."""
    dropped: bool = False
    """A file was turned away (queue full) since the current pass began."""
    thorough: bool = False
    """The current pass queues even files ``settled`` calls handled: the pass at start,
    where the handler's own checks decide (an interrupted request may run again)."""


@dataclass(frozen=True, slots=True)
class _List:
    folder: str


class _Rescan:
    """Mark every inbox folder stale."""


Task = MessagePath | _List | _Rescan


class Backlog:
    """The request files of one app waiting for its ``threads`` handler threads.

    ``handle(mp)`` handles one file; ``folders()`` names the inbox folders;
    ``listing(folder)`` gives the paths of a folder's request files and ``parse(path)``
    decodes one (None for a bad one, which it has dealt with); ``settled(mp)`` says a
    request was handled already; ``folder_of(mp)`` names a file's folder.

    With a ``pool``, the pool's threads do the work (of many backlogs, in turn) and
    ``threads`` is not used: virtual clients in one process need no threads each.
    """

    def __init__(
        self,
        *,
        handle: Callable[[MessagePath], None],
        folders: Callable[[], Iterable[str]],
        listing: Callable[[str], Iterable[str]],
        parse: Callable[[str], MessagePath | None],
        settled: Callable[[MessagePath], bool],
        folder_of: Callable[[MessagePath], str],
        threads: int,
        depth: int,
        rescan_interval: float,
        name: str,
        pool: WorkerPool | None = None,
    ) -> None:
        self._handle = handle
        self._folders = folders
        self._listing = listing
        self._parse = parse
        self._settled = settled
        self._folder_of = folder_of
        self._depth = depth
        self._rescan_interval = rescan_interval
        self._cond = threading.Condition()
        self._state: dict[str, _Folder] = {}
        self._turns: deque[str] = deque()
        self._known: set[tuple[str, str]] = set()  # queued or being handled
        self._queued = 0
        self._peak = 0
        self._rescan_at = time.monotonic()  # the backlog at start is the first rescan
        self._rescanning = False
        self._rescans = 0
        self._closing = False
        self._workers = pool
        self._running: set[int] = set()  # pool threads running a task of ours
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(0 if pool is not None else threads)
        ]

    def start(self) -> None:
        """Start the threads; the first lists every inbox (the backlog). Call it after
        the watcher that feeds :meth:`offer` exists, so no file falls in between."""
        for thread in self._threads:
            thread.start()
        self._wake()

    @property
    def queued(self) -> int:
        """Request files held in memory now, waiting for a thread."""
        with self._cond:
            return self._queued

    @property
    def peak(self) -> int:
        """The most request files ever held in memory at once (bounded; for tests)."""
        with self._cond:
            return self._peak

    def offer(self, mp: MessagePath) -> None:
        """Queue a file the watcher reported; never blocks. A file that does not fit
        stays in the store and its folder is listed later."""
        key = (mp.writer, mp.id)
        folder_name = self._folder_of(mp)
        with self._cond:
            if self._closing or key in self._known:
                return
            folder = self._folder(folder_name)
            if len(folder.queue) >= self._depth:
                folder.stale = folder.dropped = True
                return
            self._push(folder, key, mp)
            self._cond.notify()
        self._wake()

    def close(self) -> None:
        """Stop taking files; handlers already running finish first. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            me = threading.get_ident()
            while self._running - {me}:
                self._cond.wait()
        for thread in self._threads:
            if thread.ident is not None and thread is not threading.current_thread():
                thread.join()

    # -- bookkeeping (lock held) -----------------------------------------------------

    def _folder(self, name: str) -> _Folder:
        folder = self._state.get(name)
        if folder is None:
            folder = self._state[name] = _Folder()
            self._turns.append(name)
        return folder

    def _push(self, folder: _Folder, key: tuple[str, str], mp: MessagePath) -> None:
        folder.queue.append(mp)
        self._known.add(key)
        self._queued += 1
        self._peak = max(self._peak, self._queued)

    def _next(self) -> Task | None:
        """The next task, folders taking turns; None when there is nothing to do."""
        if not self._rescanning and time.monotonic() >= self._rescan_at:
            self._rescanning = True
            return _Rescan()
        for _ in range(len(self._turns)):
            name = self._turns.popleft()
            folder = self._state[name]
            if folder.queue:
                self._turns.append(name)
                self._queued -= 1
                return folder.queue.popleft()
            if folder.stale and not folder.listing:
                self._turns.append(name)
                folder.listing = True
                folder.stale = False
                if folder.cursor is None:
                    folder.dropped = False
                return _List(name)
            if folder.listing or folder.stale:
                self._turns.append(name)
            else:
                del self._state[name]  # idle: forget it until it has work again
        return None

    def _take(self) -> Task | None:
        with self._cond:
            while not self._closing:
                task = self._next()
                if task is not None:
                    return task
                due = None if self._rescanning else self._rescan_at - time.monotonic()
                self._cond.wait(None if due is None else max(0.0, due))
            return None

    # -- the threads -----------------------------------------------------------------

    def _wake(self) -> None:
        """Tell the pool, if any, that there may be work (our own threads wait on the
        condition, which the caller notified)."""
        if self._workers is not None:
            self._workers.wake(self)

    def take(self) -> Task | None:
        """For the pool: the next task, None if there is none now."""
        with self._cond:
            if self._closing:
                return None
            task = self._next()
            if task is not None:
                self._running.add(threading.get_ident())
            return task

    def run(self, task: object) -> None:
        """For the pool: do one task :meth:`take` gave."""
        try:
            self._do(task)  # type: ignore[arg-type]  # only our own tasks come back
        finally:
            with self._cond:
                self._running.discard(threading.get_ident())
                self._cond.notify_all()

    def _work(self) -> None:
        while (task := self._take()) is not None:
            self._do(task)

    def _do(self, task: Task) -> None:
        if isinstance(task, _Rescan):
            self._rescan()
        elif isinstance(task, _List):
            self._list(task.folder)
        else:
            try:
                self._handle(task)
            except Exception:
                logger.exception("unexpected failure handling %s", task)
            finally:
                with self._cond:
                    self._known.discard((task.writer, task.id))

    def _rescan(self) -> None:
        try:
            names = list(self._folders())
        except Exception:
            logger.exception("cannot list the inbox folders; will try again")
            names = None
        with self._cond:
            for name in names or ():
                folder = self._folder(name)
                folder.stale = True
                folder.thorough = folder.thorough or self._rescans == 0
            if names is not None:
                self._rescans += 1
            self._rescanning = False
            self._rescan_at = time.monotonic() + self._rescan_interval
            self._cond.notify_all()
        if self._workers is not None:
            self._workers.wake_at(self, self._rescan_at)
        self._wake()

    def _list(self, name: str) -> None:
        """Queue the next files of a folder's pass; end the pass when it reaches the end."""
        with self._cond:
            cursor = self._state[name].cursor
            thorough = self._state[name].thorough
        chosen: list[tuple[str, MessagePath]] = []
        complete = failed = True
        try:
            for path in sorted(self._listing(name)):
                if cursor is not None and path <= cursor:
                    continue
                mp = self._parse(path)
                if mp is None:
                    continue
                with self._cond:
                    known = (mp.writer, mp.id) in self._known
                if known or (not thorough and self._settled(mp)):
                    continue
                if len(chosen) == self._depth:
                    complete = False
                    break
                chosen.append((path, mp))
            failed = False
        except Exception:
            logger.exception("cannot list %s; the next rescan will", name)
        with self._cond:
            folder = self._state[name]
            folder.listing = False
            if failed:  # not again before the next rescan: the store may be down
                folder.cursor, folder.stale = None, False
                self._cond.notify_all()
                return
            for path, mp in chosen:
                key = (mp.writer, mp.id)
                if key in self._known:
                    continue
                if len(folder.queue) >= self._depth:
                    complete = False
                    break
                self._push(folder, key, mp)
                folder.cursor = path
            if chosen:
                logger.info("%d request files waiting in %s", len(chosen), name)
            if complete:
                folder.cursor = None
                folder.thorough = False
                folder.stale = folder.stale or folder.dropped
            else:
                folder.stale = True
            self._cond.notify_all()
        self._wake()
