"""Change detection by listing, for stores that have no change events.

A fixed interval is either slow or wasteful: the system fedbox replaces lists a drive
every 2 s, which puts 1 s of average latency on every message. :class:`AdaptivePollWatcher`
starts a listing every ``min_interval`` while traffic flows (a new file was found, or its
store wrote one so a reply is due, within the last ``hot_period``), then doubles the
interval after each empty listing up to ``max_interval``, and backs off the same way
while the store is unreachable. Intervals run from the start of one listing to the start
of the next, so a slow listing does not add to the wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase

from fedbox.store.base import FolderFilter
from fedbox.store.watchers import _BatchQueue, _WatcherBase

__all__ = ["AdaptivePollWatcher", "folder_matcher", "in_folders"]

logger = logging.getLogger(__name__)

_BACKOFF_FACTOR = 2.0
_HOT_POLLS = 20
"""Listings at the fast interval after the last sign of traffic, before backing off:
sequential calls leave a gap of one round trip between messages, which must not be
mistaken for idleness (1 s at the default 50 ms)."""


def folder_matcher(folders: FolderFilter | None) -> Callable[[str], bool] | None:
    """A predicate on folder names from a glob or a callable; None accepts every folder."""
    if folders is None:
        return None
    if isinstance(folders, str):
        pattern = folders
        return lambda name: fnmatchcase(name, pattern)
    if callable(folders):
        return folders
    raise TypeError(f"folders must be a glob string or a callable, not {type(folders).__name__}")


def in_folders(path: str, prefix: str, match: Callable[[str], bool] | None) -> bool:
    """Whether ``path`` lies under ``prefix`` in a first-level folder that ``match`` accepts."""
    lead = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    if not path.startswith(lead):
        return False
    if match is None:
        return True
    top, sep, _ = path[len(lead) :].partition("/")
    return bool(sep) and match(top)


class AdaptivePollWatcher(_WatcherBase):
    """Reports paths that a listing shows and the previous one did not.

    The first listing, made in the constructor, is the baseline and is not reported (the
    caller lists its backlog itself). If that listing fails, the first listing that
    succeeds reports everything it sees: a duplicate is harmless to idempotent consumers,
    a missed file is not. The lister must not retry by itself; failures are logged by the
    store, and the watcher only slows down until the store answers again.
    """

    def __init__(
        self,
        lister: Callable[[], Iterable[str]],
        *,
        min_interval: float,
        max_interval: float,
        hot_period: float | None = None,
        name: str = "fedbox-poll",
    ) -> None:
        if min_interval <= 0 or max_interval < min_interval:
            raise ValueError("need 0 < min_interval <= max_interval")
        self._batches = _BatchQueue()
        self._lister = lister
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.hot_period = _HOT_POLLS * min_interval if hot_period is None else hot_period
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._interval = min_interval
        self._hot_until = time.monotonic() + self.hot_period
        self._next = time.monotonic() + min_interval
        self._seen: set[str] | None = self._list_or_none()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def interval(self) -> float:
        """The current wait between listings (for tests and benchmarks)."""
        return self._interval

    def poke(self) -> None:
        """Traffic is expected (the store just wrote a message): poll fast again."""
        with self._lock:
            self._heat(time.monotonic())
            self._next = min(self._next, time.monotonic() + self.min_interval)
        self._wake.set()

    def _heat(self, now: float) -> None:
        self._interval = self.min_interval
        self._hot_until = now + self.hot_period

    def _list_or_none(self) -> set[str] | None:
        try:
            return set(self._lister())
        except Exception as exc:  # the store has logged it; we only slow down
            logger.debug("listing failed: %s", exc)
            return None

    def _run(self) -> None:
        while not self._batches.closed:
            with self._lock:
                delay = self._next - time.monotonic()
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                continue
            started = time.monotonic()
            current = self._list_or_none()
            found = False
            if current is not None:
                new = current if self._seen is None else current - self._seen
                for path in new:
                    self._batches.push(path)
                found = bool(new)
                self._seen = current
            with self._lock:
                if found:
                    self._heat(time.monotonic())
                elif current is None or time.monotonic() >= self._hot_until:
                    self._interval = min(self._interval * _BACKOFF_FACTOR, self.max_interval)
                self._next = max(started + self._interval, self._next)

    def _release(self) -> None:
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
