"""A few threads doing the work of many queues: in-process virtual clients (issue 20).

A thousand virtual clients with a handler thread each spend their time handing the GIL
around thousands of threads. Here a fixed number of threads serve every queue that has
work, in turn: a queue says it may have work (:meth:`WorkerPool.wake`, or
:meth:`WorkerPool.wake_at` for work due later), a free thread asks it for one task and
runs it, and the queue goes to the back of the line, so no queue waits behind another's
flood for more than one task per thread. Jobs every so many seconds (a lease to renew,
old files to remove) run there too (:class:`Periodic`) instead of sleeping on a thread
each.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["Periodic", "TaskSource", "WorkerPool"]

logger = logging.getLogger(__name__)


class TaskSource(Protocol):
    """A queue served by a :class:`WorkerPool` (a :class:`~fedbox.rpc.backlog.Backlog`)."""

    def take(self) -> object | None:
        """The next task, without blocking; None when there is none now."""

    def run(self, task: object) -> None:
        """Do one task :meth:`take` gave; never raises."""


class WorkerPool:
    """``threads`` threads serving many :class:`TaskSource` objects in turn."""

    def __init__(self, threads: int, name: str = "fedbox-worker") -> None:
        if threads < 1:
            raise ValueError(f"a pool needs at least one thread, not {threads}")
        self._cond = threading.Condition()
        self._ready: deque[TaskSource] = deque()
        self._queued: set[int] = set()  # ids of the sources in _ready
        self._timers: list[tuple[float, int, TaskSource]] = []
        self._order = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def threads(self) -> int:
        return len(self._threads)

    def wake(self, source: TaskSource) -> None:
        """``source`` may have work now: a thread will :meth:`TaskSource.take` from it."""
        with self._cond:
            self._enqueue(source)

    def wake_at(self, source: TaskSource, due: float) -> None:
        """``source`` will have work at ``due`` (``time.monotonic()`` seconds)."""
        with self._cond:
            heapq.heappush(self._timers, (due, next(self._order), source))
            self._cond.notify()

    def close(self) -> None:
        """Stop the threads once their current tasks are done. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    def _enqueue(self, source: TaskSource) -> None:
        """Put ``source`` in line unless it already is (lock held)."""
        if id(source) in self._queued:
            return
        self._queued.add(id(source))
        self._ready.append(source)
        self._cond.notify()

    def _next(self) -> TaskSource | None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    self._enqueue(heapq.heappop(self._timers)[2])
                if self._ready:
                    source = self._ready.popleft()
                    self._queued.discard(id(source))
                    return source
                self._cond.wait(self._timers[0][0] - now if self._timers else None)
            return None

    def _work(self) -> None:
        while (source := self._next()) is not None:
            try:
                task = source.take()
            except Exception:
                logger.exception("could not take work from %s", source)
                continue
            if task is None:
                continue
            self.wake(source)  # it may have more: another thread takes it, in turn
            source.run(task)


class Periodic:
    """``job()`` every ``interval`` seconds on ``pool``'s threads, until :meth:`cancel`.

    A job that raises is logged and runs again at its next time.
    """

    def __init__(self, pool: WorkerPool, interval: float, job: Callable[[], None]) -> None:
        self._workers = pool
        self._interval = interval
        self._job = job
        self._cond = threading.Condition()
        self._due = time.monotonic() + interval
        self._runner: int | None = None  # the thread running the job now
        self._cancelled = False
        pool.wake_at(self, self._due)

    def __repr__(self) -> str:
        return f"<Periodic {self._job!r} every {self._interval} s>"

    def take(self) -> object | None:
        with self._cond:
            if self._cancelled or self._runner is not None or time.monotonic() < self._due:
                return None
            self._runner = threading.get_ident()
            return self._job

    def run(self, task: object) -> None:
        try:
            self._job()
        except Exception:
            logger.exception("%r failed; it runs again in %.0f s", self, self._interval)
        with self._cond:
            self._runner = None
            self._due = time.monotonic() + self._interval
            self._cond.notify_all()
            if self._cancelled:
                return
        self._workers.wake_at(self, self._due)

    def cancel(self) -> None:
        """No more runs; a run in progress finishes first (unless it is the caller)."""
        with self._cond:
            self._cancelled = True
            while self._runner not in (None, threading.get_ident()):
                self._cond.wait()
