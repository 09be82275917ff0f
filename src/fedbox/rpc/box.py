"""A participant: one identity on one store, its private state, and the watch loop."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from fedbox.datasite.identity import validate_app_name
from fedbox.datasite.paths import Kind, MessagePath, is_inbox_of, parse_message_path
from fedbox.datasite.workspace import Workspace
from fedbox.errors import InvalidIdentity
from fedbox.rpc.app import App
from fedbox.rpc.audit import AuditLog
from fedbox.rpc.backlog import default_rescan_interval
from fedbox.rpc.defaults import DEFAULT_CLEANUP_EXPIRY, DEFAULT_EXPIRY
from fedbox.rpc.futures import Future, FutureRecord, FutureStore
from fedbox.rpc.messages import Response
from fedbox.rpc.parts import default_chunk_size, default_chunk_threshold
from fedbox.rpc.quarantine import quarantine
from fedbox.rpc.responses import read_response, response_file
from fedbox.rpc.sealing import Sealer
from fedbox.store import Store, Watcher

if TYPE_CHECKING:
    from fedbox.rpc.shared import SharedServing

__all__ = ["DEFAULT_CLEANUP_EXPIRY", "DEFAULT_EXPIRY", "Arrivals", "Box", "RequestRoute"]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
RequestRoute = Callable[[MessagePath], None]
"""Takes one request file addressed to us (its path decoded and validated)."""
_SUFFIXES = (".request", ".response")
RECENT_ARRIVALS = 4096
"""Responses remembered as arrived when nobody waits for them and they were not read:
enough for :meth:`Future.done` to answer from memory right after a wait, bounded for a
box that lives for millions of messages (issue 11.16)."""
RECENT_ABSENCES = 65536
"""Responses remembered as not there yet, so that waiting again on the same futures asks
the watcher instead of the disk: an aggregator waiting on N replies wakes up to N times
per round, and looked for every missing file each time (issue 20). Forgetting one costs
only a look at the disk."""
UNREPORTED_LIMIT = 65536
"""Requests remembered as sent while the watcher ran, whose replies it has not reported
yet: waiting on one needs no look in the store first (a round trip on a hub). Beyond the
limit the oldest are forgotten, which only costs that look."""


class Box:
    """One identity's connection to a store. Build it with :func:`connect`.

    A single watcher per box feeds both directions: requests go to the started app
    they name, responses wake whoever waits on their future. Nothing runs in the
    background until an app starts or someone waits.

    With ``encrypt=True`` every request and response body is end-to-end encrypted
    (``sealer`` holds the keys) and plaintext requests are refused with 403.

    Bodies larger than ``chunk_threshold`` bytes are stored as blobs of ``chunk_size``
    bytes (``fedbox.rpc.parts``; defaults from ``$FEDBOX_CHUNK_THRESHOLD`` and
    ``$FEDBOX_CHUNK_SIZE``, else 512 MiB and 64 MiB).

    A serving app lists its inboxes every ``rescan_interval`` seconds (default
    ``$FEDBOX_RESCAN_INTERVAL``, else 30 s), so a request whose handling failed before
    it was claimed, or a file the watcher never reported, waits no longer than that.

    With ``shared``, the box has no threads of its own: that object's watcher reports
    its files and its threads run its handlers, for many boxes in one process.

    Apps and futures use the box through a small seam: :meth:`route_requests`,
    :meth:`stop_routing`, :meth:`inboxes`, :meth:`request_files`, :meth:`message_path`
    (serving), :meth:`start_watching`, :meth:`response_arrived` and
    :meth:`read_response` (calling).
    """

    def __init__(
        self,
        store: Store,
        workspace: Workspace,
        *,
        clock: Clock = time.time,
        cleanup_expiry: float = DEFAULT_CLEANUP_EXPIRY,
        handler_threads: int = 8,
        encrypt: bool = False,
        chunk_threshold: int | None = None,
        chunk_size: int | None = None,
        rescan_interval: float | None = None,
        shared: SharedServing | None = None,
    ) -> None:
        self.store = store
        self.shared = shared
        self.workspace = workspace.ensure()
        self.email = workspace.email
        # First: if the keys are unusable, fail before any database is opened.
        self.sealer = Sealer(store, self.workspace.state_dir, self.email) if encrypt else None
        self.clock = clock
        self.cleanup_expiry = cleanup_expiry
        self.handler_threads = handler_threads
        self.rescan_interval = default_rescan_interval(rescan_interval)
        self.chunk_threshold = default_chunk_threshold(chunk_threshold)
        self.chunk_size = default_chunk_size(chunk_size)
        self.audit = AuditLog(workspace.audit_db)
        self.futures = FutureStore(workspace.futures_db)
        self._apps: dict[str, App] = {}
        self._routes: dict[str, RequestRoute] = {}
        self._arrived: dict[str, None] = {}  # oldest first
        self._absent: dict[str, None] = {}  # oldest first; the watcher reports them
        self._unreported: dict[str, None] = {}  # oldest first
        self._held_back: dict[str, None] = {}  # oldest first
        self._awaiting: list[Arrivals] = []
        self._cond = threading.Condition()
        self._watch_lock = threading.Lock()
        self._watch_thread: threading.Thread | None = None
        self._watcher: Watcher | None = None
        self._watch_since = 0.0
        self._closed = False

    def __repr__(self) -> str:
        return f"<Box {self.email} on {self.store!r}>"

    @property
    def encrypt(self) -> bool:
        """Whether this box encrypts what it sends and refuses plaintext requests."""
        return self.sealer is not None

    def app(self, name: str) -> App:
        """The app ``name`` of this identity (one object per name, created on first use)."""
        validate_app_name(name)
        if name not in self._apps:
            self._apps[name] = App(self, name)
        return self._apps[name]

    # -- routing requests ------------------------------------------------------------

    def route_requests(self, app: str, route: RequestRoute) -> None:
        """Send request files for ``app`` to ``route`` as they land, until
        :meth:`stop_routing`. Files already there (and any a watcher misses) are the
        caller's to list, after this call: :meth:`inboxes`, :meth:`request_files`.
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        self._routes[app] = route
        self.start_watching()

    def inboxes(self) -> list[str]:
        """The folders others write our requests into, one per sender."""
        if self.shared is not None:
            return self.shared.inboxes(self.email, self._watch_since)
        return [f for f in self.store.list_dirs() if is_inbox_of(f, self.email)]

    def request_files(self, inbox: str, app: str) -> list[str]:
        """The paths of the request files for ``app`` in the folder ``inbox``."""
        return [entry.path for entry in self.store.list(f"{inbox}/{app}/rpc", ".request")]

    def message_path(self, path: str) -> MessagePath | None:
        """The decoded path of a message file in one of our inboxes; None (and the file
        quarantined) if its name is a path trick."""
        try:
            return parse_message_path(path)
        except InvalidIdentity as exc:
            self._refuse_bad_path(path, str(exc))
            return None

    def stop_routing(self, app: str) -> None:
        """Requests for ``app`` are no longer taken (they wait for the next start)."""
        self._routes.pop(app, None)

    # -- the watch loop ------------------------------------------------------------

    def start_watching(self) -> None:
        """Start the shared watcher once; callers list their backlog only after this."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        with self._watch_lock:
            if self._watcher is not None:
                return
            if self.shared is not None:
                self._watcher = self.shared.attach(self, self._serving)
                self._watch_since = time.monotonic()
                return
            me = self.email
            self._watcher = self.store.watch(
                "", _SUFFIXES, folders=lambda name: is_inbox_of(name, me)
            )
            self._watcher.list_when(self._serving)
            self._watch_thread = threading.Thread(
                target=self._watch_loop, name=f"fedbox-watch-{self.email}", daemon=True
            )
            self._watch_thread.start()

    def watching(self) -> bool:
        """Whether the watcher runs: by the Watcher contract it reports every file that
        lands from now on."""
        return self._watcher is not None

    def reply_will_be_reported(self, id: str) -> None:
        """The request ``id`` was written while :meth:`watching`: its reply cannot have
        landed before the watcher started, so a wait for it needs no look in the store."""
        with self._cond:
            if id in self._arrived:
                return
            _remember(self._unreported, id, UNREPORTED_LIMIT)

    def _serving(self) -> bool:
        """Whether requests matter: only then must a polling watcher list our inboxes."""
        return bool(self._routes)

    def _watch_loop(self) -> None:
        """Dispatch arrivals until closed; one failing file never stops the loop."""
        assert self._watcher is not None
        for batch in self._watcher:
            for path in batch:
                try:
                    self.dispatch(path)
                except Exception:
                    logger.exception("could not dispatch %s; continuing", path)

    def dispatch(self, path: str) -> None:
        """Take one file the watcher reported: a request goes to its app, a response
        wakes whoever waits for it."""
        if not is_inbox_of(path.split("/", 1)[0], self.email):
            return
        mp = self.message_path(path)
        if mp is None:
            return
        if mp.kind is Kind.RESPONSE:
            self._notify_arrival([mp.id])
            return
        route = self._routes.get(mp.app)
        if route is not None:
            route(mp)

    def _refuse_bad_path(self, path: str, reason: str) -> None:
        """A file whose very name is a path trick: quarantine it, answer nobody."""
        logger.warning("quarantining %s: %s", path, reason)
        quarantine(self.store, path)
        self.audit.record_refused(
            id=PurePosixPath(path).name,
            peer="?",
            app="?",
            endpoint="?",
            status=400,
            at=self.clock(),
            note=f"bad path: {reason}",
        )

    def _notify_arrival(self, ids: Iterable[str]) -> None:
        with self._cond:
            for id in ids:
                self._arrived.pop(id, None)
                self._arrived[id] = None
                self._absent.pop(id, None)
                self._unreported.pop(id, None)
                self._held_back.pop(id, None)
                for arrivals in self._awaiting:
                    if id in arrivals.by_id:
                        arrivals.landed.append(id)
            self._forget_oldest(len(self._arrived) - RECENT_ARRIVALS)
            self._cond.notify_all()

    def forget_arrival(self, id: str) -> None:
        """The response to ``id`` was set aside unread: it is pending again."""
        with self._cond:
            self._arrived.pop(id, None)

    def hold_back(self, id: str) -> None:
        """The response to ``id`` was refused but could not be moved aside (a hub lets
        only its writer move it): it no longer counts as arrived, and finding it in the
        store does not change that; only a new file the watcher reports there does."""
        with self._cond:
            self._arrived.pop(id, None)
            self._unreported.pop(id, None)
            self._absent.pop(id, None)
            _remember(self._held_back, id, UNREPORTED_LIMIT)

    def _forget_oldest(self, count: int) -> None:
        """Drop ``count`` of the oldest arrivals nobody waits for (lock held)."""
        if count <= 0:
            return
        unawaited = (i for i in self._arrived if not self._awaited(i))
        for id in list(itertools.islice(unawaited, count)):
            del self._arrived[id]

    def response_read(self, id: str) -> None:
        """The response to ``id`` was read: its arrival need not be remembered any more
        unless someone is still waiting for it."""
        with self._cond:
            if not self._awaited(id):
                self._arrived.pop(id, None)

    @property
    def arrivals_remembered(self) -> int:
        """How many response arrivals the box keeps in memory (bounded; for tests)."""
        with self._cond:
            return len(self._arrived)

    # -- responses -------------------------------------------------------------------

    def response_arrived(self, record: FutureRecord) -> bool:
        """Whether the response to ``record`` is in the store (read it with
        :meth:`read_response`)."""
        if record.id in self._arrived:
            return True
        if record.id in self._held_back:
            return False
        if record.id in self._absent:
            return False
        reported = self._reports_arrivals()  # before looking: nothing lands unseen
        if self.store.exists(response_file(self.email, record)):
            self._notify_arrival([record.id])
            return True
        if reported:
            self._remember_absent(record.id)
        return False

    def _reports_arrivals(self) -> bool:
        """Whether the watcher runs and reports every response file as it lands (file
        events on a store where a look is cheap): then a response found missing needs
        no second look until the watcher reports it."""
        caps = self.store.capabilities
        return self._watcher is not None and caps.events and caps.cheap_exists

    def _remember_absent(self, id: str) -> None:
        with self._cond:
            if id in self._arrived:  # reported while we looked
                return
            _remember(self._absent, id, RECENT_ABSENCES)

    def read_response(self, record: FutureRecord, *, stream: bool = False) -> Response | None:
        """The verified response to ``record``, None while it has not arrived (see
        :func:`fedbox.rpc.responses.read_response`)."""
        return read_response(self, record, stream=stream)

    def future(self, id: str) -> Future:
        """Re-attach to a request sent earlier, by this or a previous process."""
        record = self.futures.get(id)
        if record is None:
            raise KeyError(f"no request with id {id!r} was sent by {self.email}")
        return Future(self, record)

    def wait(
        self, futures: Iterable[Future], timeout: float | None = None, *, return_when: str = "all"
    ) -> tuple[list[Future], list[Future]]:
        """Wait on many futures at once: ``(done, pending)`` when all (or, with
        ``return_when="any"``, the first) are done, or when ``timeout`` passes.

        One wait of :meth:`awaiting`; a caller that waits again and again on what is
        left of the same futures should hold one of those instead.
        """
        if return_when not in ("all", "any"):
            raise ValueError("return_when must be 'all' or 'any'")
        pending = list(futures)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.awaiting(pending) as arrivals:
            ids = set(arrivals.by_id)
            left = set(ids)
            while left and not (return_when == "any" and len(left) < len(ids)):
                remaining = None if deadline is None else deadline - time.monotonic()
                landed = arrivals.take(remaining)
                if not landed and remaining is not None and remaining <= 0:
                    break
                left.difference_update(fut.id for fut in landed)
        return [f for f in pending if f.id not in left], [f for f in pending if f.id in left]

    @contextmanager
    def awaiting(self, futures: Iterable[Future]) -> Iterator[Arrivals]:
        """The responses to ``futures`` as they land, for as long as the block runs:
        :meth:`Arrivals.take` them.

        Only the watcher reports arrivals, so no store I/O (network, on a remote store)
        runs under the lock. A polling watcher is told which responses are due: it finds
        them whether or not they landed before it started, by name while few are due.
        Event watchers report only what is new, so the store is asked once per future
        first, unless its request was written while the watcher already ran
        (:meth:`reply_will_be_reported`): then the watcher will report the reply.
        What is awaited is never forgotten as arrived.
        """
        arrivals = Arrivals(self, futures)
        self.start_watching()
        watcher = self._watcher
        assert watcher is not None, "start_watching has set it"
        with self._cond:
            self._awaiting.append(arrivals)
        due: list[str] = []
        try:
            if self.store.capabilities.cheap_exists:
                with self._cond:
                    look = [f for f in arrivals.futures() if f.id not in self._unreported]
                for fut in look:
                    fut.done()  # responses that may have landed before the watcher started
            else:
                with self._cond:
                    due = [
                        response_file(self.email, f.record)
                        for f in arrivals.futures()
                        if f.id not in self._arrived
                    ]
                watcher.expect(due)
            with self._cond:
                arrivals.landed.extend(i for i in arrivals.by_id if i in self._arrived)
            yield arrivals
        finally:
            if due:
                watcher.forget(due)
            with self._cond:
                self._awaiting.remove(arrivals)
                self._forget_oldest(len(self._arrived) - RECENT_ARRIVALS)

    def _awaited(self, id: str) -> bool:
        """Whether someone waits for the response to ``id`` (lock held)."""
        return any(id in arrivals.by_id for arrivals in self._awaiting)

    def close(self) -> None:
        """Stop every app, the watcher and the databases. Idempotent."""
        if self._closed:
            return
        for app in list(self._apps.values()):
            app.stop()
        self._closed = True
        if self.shared is not None:
            self.shared.detach(self)
        elif self._watcher is not None:
            self._watcher.close()
        if self._watch_thread is not None:
            self._watch_thread.join(timeout=5)
        self.audit.close()
        self.futures.close()
        self.store.close()

    def __enter__(self) -> Box:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Arrivals:
    """Responses awaited together (:meth:`Box.awaiting`), handed over as they land.

    An aggregator waits on a thousand replies and wakes for every few that land: each
    wake costs what landed, not what is still awaited (going over the awaited again at
    each wake took between a twentieth and a seventh of the aggregator's time at 1,000
    clients, by two profilers, issue 20).
    """

    def __init__(self, box: Box, futures: Iterable[Future]) -> None:
        self._box = box
        self.by_id: dict[str, list[Future]] = {}
        for fut in futures:
            if not isinstance(fut, Future):
                raise TypeError(f"expected the Futures send returns, not {type(fut).__name__}")
            self.by_id.setdefault(fut.id, []).append(fut)
        self.landed: list[str] = []
        """Ids the watcher reported since the last take (the box's lock held)."""

    def futures(self) -> Iterator[Future]:
        """Every future awaited."""
        return itertools.chain.from_iterable(self.by_id.values())

    def take(self, timeout: float | None = None) -> list[Future]:
        """The futures whose responses landed since the last take (the first take: also
        those that had landed before), waiting up to ``timeout`` seconds (None: for
        ever) for one; [] if none did. A response set aside since it landed (a planted
        file) does not count.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        box = self._box
        with box._cond:
            while True:
                if self.landed:
                    ids = dict.fromkeys(self.landed)
                    self.landed.clear()
                    found = [f for i in ids if i in box._arrived for f in self.by_id[i]]
                    if found:
                        return found
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                box._cond.wait(remaining)


def _remember(ids: dict[str, None], id: str, limit: int) -> None:
    """Add ``id`` to an oldest-first set bounded at ``limit`` (lock held): forgetting the
    oldest only costs a look in the store."""
    ids.pop(id, None)
    ids[id] = None
    while len(ids) > limit:
        del ids[next(iter(ids))]
