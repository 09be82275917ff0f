"""Change detection by listing, for stores that have no change events.

A fixed interval is either slow or wasteful: the system fedbox replaces lists a drive
every 2 s, which puts 1 s of average latency on every message. :class:`AdaptivePollWatcher`
starts a poll every ``min_interval`` while traffic flows (a new file was found, or its
store wrote one so a reply is due, within the last ``hot_period``), then doubles the
interval after each empty poll up to ``max_interval``, and backs off the same way
while the store is unreachable.

Polls start on a grid shared by every watcher: the instants at which wall-clock time is a
whole multiple of the interval. Neither a slow listing nor a late wake-up shifts it, and
a peer can tell when a request it just wrote will be listed: at the next grid instant.

A poll lists the store, unless its consumer says that only files it can name matter (a
caller waiting for replies, which are named after their requests): then, while at most
:data:`PROBE_LIMIT` are due, it looks those up by name, one request each, and does nothing
at all when none is due. Those lookups run on the same grid shifted by a learned
turnaround (the time the peer takes from its listing to its reply), so the first one
usually finds the reply just after it lands instead of up to an interval later: a round
trip costs about one interval of waiting in all, not two independent half-intervals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase

from fedbox.store.base import FolderFilter
from fedbox.store.watchers import _BatchQueue, _WatcherBase

__all__ = [
    "PROBE_LIMIT",
    "AdaptivePollWatcher",
    "FolderScan",
    "LeafScan",
    "folder_matcher",
    "grid_after",
    "in_folders",
]

logger = logging.getLogger(__name__)

_BACKOFF_FACTOR = 2.0
_HOT_POLLS = 20
"""Polls at the fast interval after the last sign of traffic, before backing off:
sequential calls leave a gap of one round trip between messages, which must not be
mistaken for idleness (1 s at the default 50 ms)."""
PROBE_LIMIT = 4
"""Most expected files a poll looks up by name; with more due, one listing per folder is
cheaper than one lookup per file."""
_LEAD_UP = 1 / 16
_LEAD_DOWN = 1 / 48
"""Steps of the learned turnaround, in minimum intervals, after a first lookup missed and
after one hit: their ratio makes it settle where about three first lookups in four find
their file (a miss costs little: the lookups that follow come soon)."""


_EARLY = 0.002
"""Seconds a poll may run ahead of a lookup's time (a wake-up's rounding) and still make it."""
_MAX_DOUBLINGS = 4
"""Past this many doublings of the quick retry (an eighth of an interval) the next grid
instant comes first anyway; the cap keeps a reply awaited for minutes from overflowing."""


def grid_after(now: float, interval: float) -> float:
    """The first instant after ``now`` (``time.monotonic()``) at which wall-clock time is a
    whole multiple of ``interval``."""
    return now + interval - time.time() % interval


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


class _Refresh:
    """When a scan lists everything again: every ``refresh`` seconds, up to 10% early (so
    that polls exactly ``refresh`` apart, an idle watcher's, refresh every time), and on
    every poll while the last full listing found nothing to narrow later polls to."""

    def __init__(self, refresh: float) -> None:
        self._refresh = refresh
        self._last = 0.0

    def due(self, narrowed: bool) -> bool:
        now = time.monotonic()
        if narrowed and now - self._last < 0.9 * self._refresh:
            return False
        self._last = now
        return True


class FolderScan:
    """A lister for :class:`AdaptivePollWatcher`: the files in the accepted folders, and
    the folder names themselves, on every poll.

    A folder that appears is a new sender's first message (first contact, issue 20): it
    is listed in the poll that finds its name, so it is seen within one poll interval
    plus one listing, not at a periodic refresh of the names. So that this costs a poll
    one request more but no time, the names are listed on a helper thread while the
    known folders' files are listed; only a new folder is then listed after them.
    """

    def __init__(
        self,
        folders: Callable[[], Iterable[str]],
        files: Callable[[str], Iterable[str]],
    ) -> None:
        self._folders = folders
        self._files = files
        self._known: list[str] = []

    def __call__(self) -> set[str]:
        if not self._known:  # nothing to list beside the names
            self._known = list(self._folders())
            return self._files_of(self._known)
        names = _Background(lambda: list(self._folders()))
        try:
            found = self._files_of(self._known)
        finally:
            current = names.result()
        known = set(self._known)
        new = [folder for folder in current if folder not in known]
        self._known = current
        return found | self._files_of(new)

    def _files_of(self, folders: Iterable[str]) -> set[str]:
        return {path for folder in folders for path in self._files(folder)}


class _Background:
    """``fn()`` on a thread of its own; :meth:`result` waits and returns or raises it."""

    def __init__(self, fn: Callable[[], list[str]]) -> None:
        self._fn = fn
        self._value: list[str] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fedbox-list-names", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self) -> list[str]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class LeafScan:
    """The files under one folder, for stores that list a subtree one folder at a time
    (SFTP, WebDAV without deep PROPFIND): a poll lists only the folders where files were
    found, one request each, instead of walking every level (4 requests for an RPC inbox,
    ``{outbox}/{app}/rpc/{endpoint}``).

    The whole subtree is walked again every ``refresh`` seconds, and on every poll while
    no such folder is known; so a message to a new app or endpoint of a folder already in
    use is found within ``refresh``. Folders stay known after their files are cleaned up:
    an idle inbox costs one listing per folder, not a walk.
    """

    def __init__(
        self,
        walk: Callable[[], Iterable[str]],
        files_in: Callable[[str], Iterable[str]],
        *,
        refresh: float,
    ) -> None:
        self._walk = walk
        self._files_in = files_in
        self._refresh = _Refresh(refresh)
        self._leaves: set[str] = set()

    def __call__(self) -> list[str]:
        if self._refresh.due(narrowed=bool(self._leaves)):
            found = list(self._walk())
            self._leaves.update(path.rpartition("/")[0] for path in found)
            return found
        return [path for leaf in sorted(self._leaves) for path in self._files_in(leaf)]


class AdaptivePollWatcher(_WatcherBase):
    """Reports paths that a listing shows and the previous one did not, and expected
    paths (:meth:`expect`) as soon as they exist.

    The first listing, made in the constructor, is the baseline and is not reported (the
    caller lists its backlog itself). If that listing fails, the first listing that
    succeeds reports everything it sees: a duplicate is harmless to idempotent consumers,
    a missed file is not. The lister and ``prober`` (``prober(path)``: whether the file
    exists) must not retry by themselves; failures are logged by the store, and the
    watcher only slows down until the store answers again.
    """

    def __init__(
        self,
        lister: Callable[[], Iterable[str]],
        *,
        min_interval: float,
        max_interval: float,
        hot_period: float | None = None,
        name: str = "fedbox-poll",
        prober: Callable[[str], bool] | None = None,
    ) -> None:
        if min_interval <= 0 or max_interval < min_interval:
            raise ValueError("need 0 < min_interval <= max_interval")
        self._batches = _BatchQueue()
        self._lister = lister
        self._prober = prober
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.hot_period = _HOT_POLLS * min_interval if hot_period is None else hot_period
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._interval = min_interval
        self._hot_until = time.monotonic() + self.hot_period
        self._next = grid_after(time.monotonic(), min_interval)
        self._expected: dict[str, int] = {}
        self._lookup_at: dict[str, float] = {}
        self._first_at: dict[str, float] = {}
        self._misses: dict[str, int] = {}
        self._first: set[str] = set()
        self._lead = 0.0
        self._must_list: Callable[[], bool] = lambda: True
        self._seen: set[str] | None = self._list_or_none()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def interval(self) -> float:
        """The current wait between polls (for tests and benchmarks)."""
        return self._interval

    def poke(self) -> None:
        """Traffic is expected (the store just wrote a message): poll fast again."""
        with self._lock:
            now = time.monotonic()
            self._heat(now)
            self._next = min(self._next, grid_after(now, self.min_interval))
        self._wake.set()

    @property
    def lead(self) -> float:
        """The learned turnaround: how long after a grid instant a lookup by name is
        made (for benchmarks)."""
        return self._lead

    def expect(self, paths: Iterable[str]) -> None:
        """These files are due (replies to requests just written): report each once it
        exists, even if a listing showed it before, and poll fast meanwhile.

        The peer lists its inbox at the next grid instant and replies :attr:`lead` seconds
        later, so that is when the first lookup by name is made, and every interval after.
        Whether first lookups find their file moves the lead: a lookup made before the
        reply lands is wasted and puts the find a whole interval later.
        """
        with self._lock:
            now = time.monotonic()
            self._heat(now)
            first = grid_after(now, self.min_interval) + self._lead
            for path in paths:
                if path not in self._expected:
                    self._lookup_at[path] = self._first_at[path] = first
                    self._misses[path] = 0
                    self._first.add(path)
                self._expected[path] = self._expected.get(path, 0) + 1
            self._next = self._following(now, self._next)
        self._wake.set()

    def forget(self, paths: Iterable[str]) -> None:
        """Undo one :meth:`expect` of each path (a caller stopped waiting); a path that
        several callers wait for stays expected until each has forgotten it."""
        with self._lock:
            for path in paths:
                count = self._expected.get(path, 0) - 1
                if count > 0:
                    self._expected[path] = count
                else:
                    self._drop(path)

    def _drop(self, path: str) -> None:
        self._expected.pop(path, None)
        self._lookup_at.pop(path, None)
        self._first_at.pop(path, None)
        self._misses.pop(path, None)
        self._first.discard(path)

    def list_when(self, needed: Callable[[], bool]) -> None:
        """``needed()`` says whether files nobody expects still matter (someone serves
        requests). While it is False, polls only look up expected files by name, when there
        are few enough, and skip the store when none are due; a later listing still
        reports what appeared meanwhile."""
        self._must_list = needed

    def _heat(self, now: float) -> None:
        self._interval = self.min_interval
        self._hot_until = now + self.hot_period

    def _list_or_none(self) -> set[str] | None:
        try:
            return set(self._lister())
        except Exception as exc:  # the store has logged it; we only slow down
            logger.debug("listing failed: %s", exc)
            return None

    def _probing(self) -> bool:
        """Whether polls look expected files up by name rather than list (lock held)."""
        return (
            self._prober is not None
            and len(self._expected) <= PROBE_LIMIT
            and not self._must_list()
        )

    def _following(self, now: float, listing_at: float) -> float:
        """When to poll next (lock held): the earliest lookup due while probing, else
        ``listing_at``, or the next grid instant if that comes first while hot."""
        if self._probing():
            return min(self._lookup_at.values(), default=listing_at)
        return min(listing_at, grid_after(now, self._interval))

    def _poll(self, started: float) -> set[str] | None:
        """One look at the store: the paths to report, or None if the store failed."""
        with self._lock:
            expected = set(self._expected)
            probing = self._probing()
            due = {p for p, at in self._lookup_at.items() if at <= started + _EARLY}
        prober = self._prober
        if probing and prober is not None:  # probing implies a prober
            try:
                found = {path for path in due if prober(path)}
            except Exception as exc:  # the store has logged it; we only slow down
                logger.debug("lookup failed: %s", exc)
                return None
            self._learn(due, found, started)
            return found
        current = self._list_or_none()
        if current is None:
            return None
        new = current if self._seen is None else current - self._seen
        self._seen = current
        return new | (current & expected)

    def _learn(self, looked_up: set[str], found: set[str], started: float) -> None:
        """Move the lead by whether first lookups found their files, and schedule the
        next lookup of those still missing.

        A miss most often means the reply is a little late, so the next lookups come
        soon after, an eighth of an interval and doubling; but never later than the
        lead past the peer's next listing, in case this one did not see the request.
        """
        with self._lock:
            first = looked_up & self._first
            self._first -= first
            if first and first <= found:
                self._lead = max(0.0, self._lead - _LEAD_DOWN * self.min_interval)
            elif first:
                self._lead = min(self.max_interval, self._lead + _LEAD_UP * self.min_interval)
            for path in looked_up - found:
                if path not in self._lookup_at:
                    continue
                misses = self._misses[path] = self._misses[path] + 1
                doublings = min(misses - 1, _MAX_DOUBLINGS)
                soon = started + self.min_interval / 8 * 2**doublings
                on_grid = self._first_at[path]
                behind = started + _EARLY - on_grid
                if behind >= 0:
                    on_grid += (behind // self.min_interval + 1) * self.min_interval
                self._lookup_at[path] = min(soon, on_grid)

    def _run(self) -> None:
        while not self._batches.closed:
            with self._lock:
                planned = self._next
            delay = planned - time.monotonic()
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                continue
            found = self._poll(time.monotonic())
            for path in found or ():
                self._batches.push(path)
            with self._lock:
                for path in found or ():
                    self._drop(path)
                now = time.monotonic()
                if found:
                    self._heat(now)
                elif found is None or now >= self._hot_until:
                    self._interval = min(self._interval * _BACKOFF_FACTOR, self.max_interval)
                self._next = self._following(now, grid_after(now, self._interval))

    def _release(self) -> None:
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
