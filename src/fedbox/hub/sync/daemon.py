"""The sync daemon: a folder and a hub kept in step, path by path.

How it runs:

1. **Start.** The folder watcher starts first (nothing written meanwhile is missed),
   then one walk of the folder compares each file's (size, mtime) with the journal:
   only files that differ are hashed and considered. On the hub side, a first sync lists
   the readable files once; every later start reads the change feed from the journal's
   cursor. So a restart with nothing changed costs O(1) requests, not O(files).
2. **Run.** Paths touched by OS events or the pushed feed go into one queue, requests
   and responses (``.request``/``.response``) ahead of bulk files. Worker threads take
   them, one worker per path at a time, and apply :func:`~fedbox.hub.sync.reconcile.decide`.
3. **Cursor.** A feed batch's cursor is saved only once every path in it is settled, so
   a crash re-reads changes rather than losing them.

Uploads are conditional on the version the journal (or the feed) last saw, so a write
that raced another participant's comes back 412 and becomes a conflict copy instead of
overwriting. See the package docstring for the rest.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fedbox.errors import FedboxError, NotFound, StoreError
from fedbox.hub.access import is_rules_path
from fedbox.hub.sync.batch import UploadBatcher
from fedbox.hub.sync.copies import keep_aside
from fedbox.hub.sync.feed import FeedFollower
from fedbox.hub.sync.ignore import SyncRules
from fedbox.hub.sync.inline import InlineBytes
from fedbox.hub.sync.journal import Journal, Synced
from fedbox.hub.sync.local import FolderWatcher, walk
from fedbox.hub.sync.reconcile import Action, LocalFile, RemoteFile, decide
from fedbox.hub.sync.remote import HubAway, Refused, Stale, SyncRemote
from fedbox.hub.sync.status import STATE_DIR, StatusBoard, SyncStatus
from fedbox.hub.sync.transfer import ChangedMeanwhile, NoSpace, local_file, place, remove, staged

__all__ = ["SyncDaemon", "SyncOptions"]

logger = logging.getLogger(__name__)

_UNKNOWN: Any = object()
"""No news from the hub about a path: it is taken to be as the journal says."""
_RPC_SUFFIXES = (".request", ".response")
_DEFERRED_RETRY = 5.0


@dataclass(frozen=True)
class SyncOptions:
    folder: Path
    hub: str
    email: str
    state_dir: Path | None = None
    only: tuple[str, ...] = ()
    """gitignore-style globs: sync only these paths (applied by the hub's feed too)."""
    min_free: int = 100 << 20
    """Downloads that would leave less free space than this are refused (per file)."""
    workers: int = 32
    """Paths synced at once: mostly waiting on the hub or the disk, and a burst's small
    uploads share requests (and its downloads' fsyncs share disk commits) this wide."""
    resumable_above: int = 64 << 20
    part_size: int = 16 << 20


@dataclass
class _Batch:
    cursor: int
    paths: set[str] = field(default_factory=set)


class SyncDaemon:
    """Mirror ``options.folder`` through ``options.hub``: :meth:`start` / :meth:`stop`, or
    :meth:`run_once` for one reconcile."""

    def __init__(self, options: SyncOptions) -> None:
        self.options = options
        self.root = options.folder.resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FedboxError(f"{options.folder} is not a folder we can use: {exc}") from exc
        self.rules = SyncRules(self.root, options.only)
        self.remote = SyncRemote(
            options.hub, options.email, options.state_dir, only=options.only,
            resumable_above=options.resumable_above, part_size=options.part_size,
        )  # fmt: skip
        self.uploads = UploadBatcher(self.remote)
        self.inline = InlineBytes()
        self.journal = Journal(self.root / STATE_DIR / "journal.db")
        self.board = StatusBoard(
            self.root,
            SyncStatus(str(self.root), self.remote.login.url, options.email, os.getpid()),
        )
        self._cv = threading.Condition()
        self._heap: list[tuple[int, int, str]] = []
        self._order = itertools.count()
        self._queued: set[str] = set()
        self._busy: set[str] = set()
        self._again: set[str] = set()
        self._hints: dict[str, RemoteFile | None] = {}
        self._batches: deque[_Batch] = deque()
        self._retry: dict[str, float] = {}
        self._tries: dict[str, int] = {}
        self._deferred: dict[str, float] = {}
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._watcher: FolderWatcher | None = None
        self._feed: FeedFollower | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> SyncDaemon:
        """Reconcile at start (waiting for the hub if it is away), then follow both sides
        until :meth:`stop`."""
        self._begin()
        delay = 0.1
        while True:
            try:
                cursor = self._reconcile_at_start()
                break
            except HubAway as exc:
                logger.warning("waiting for the hub: %s", exc)
                self.board.update(last_error=str(exc))
                time.sleep(delay)  # backoff while the hub is away at start
                delay = min(delay * 2, 5.0)
        self._feed = FeedFollower(self.remote, cursor, self._on_changes, self._on_feed_state)
        return self

    def _begin(self) -> None:
        self.board.update(running=True, started=time.time())
        self._watcher = FolderWatcher(self.root, self._touched, self._removed)
        for i in range(self.options.workers):
            worker = threading.Thread(target=self._work, name=f"sync-{i}", daemon=True)
            worker.start()
            self._threads.append(worker)
        keeper = threading.Thread(target=self._housekeeping, name="sync-keeper", daemon=True)
        keeper.start()
        self._threads.append(keeper)

    def run_once(self, timeout: float | None = None) -> SyncStatus:
        """One reconcile of folder, hub and journal, then stop; the final status."""
        self._begin()
        try:
            self._reconcile_at_start()
            self.wait_idle(timeout)
        finally:
            self.stop()
        return self.board.status

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once nothing is queued, in flight or waiting to be retried."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._heap or self._busy or self._retry:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(0.05 if left is None else min(left, 0.05))
        return True

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        if self._feed is not None:
            self._feed.close()
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._publish()
        self.board.update(running=False)
        self.board.save(force=True)
        self.journal.close()
        self.remote.close()

    def __enter__(self) -> SyncDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what to look at -----------------------------------------------------------------

    def _reconcile_at_start(self) -> int:
        """Queue every path that may differ; the cursor the feed continues from."""
        selection = json.dumps(sorted(self.options.only))
        saved = self.journal.meta("cursor")
        known = self.journal.all()
        if saved is None or self.journal.meta("only") != selection:
            cursor = self.remote.head()
            listed = {p: f for p, f in self.remote.listing().items() if self.rules.syncs(p)}
            news: dict[str, RemoteFile | None] = dict(listed)
            news.update({p: None for p in known if p not in listed and self.rules.syncs(p)})
            self.journal.set_meta("only", selection)
            self._note_changes(news, cursor)
        else:
            cursor = int(saved)
            while True:
                changes, after = self.remote.changes(cursor)
                if not changes and after == cursor:
                    break
                self._on_changes(changes, after)
                cursor = after
        self.board.update(head=max(self.board.status.head, cursor))
        for rel, (size, mtime_ns) in walk(self.root).items():
            base = known.get(rel)
            if self.rules.syncs(rel) and (
                base is None or base.absent or (base.size, base.mtime_ns) != (size, mtime_ns)
            ):
                self._enqueue(rel)
        for rel, base in known.items():
            if not base.absent and not (self.root / rel).is_file():
                self._enqueue(rel)
        return cursor

    def _touched(self, rel: str) -> None:
        if self.rules.syncs(rel):
            self._enqueue(rel)

    def _removed(self, rel: str) -> None:
        """A file or a whole folder went away (deleted, or renamed out of the tree)."""
        self._touched(rel)
        for inside in self.journal.under(rel):
            self._touched(inside)
        lead = rel + "/"
        with self._cv:  # in flight: its journal entry may not be written yet
            for inside in [p for p in self._busy if p.startswith(lead)]:
                self._again.add(inside)

    def _on_changes(self, changes: list[dict[str, Any]], cursor: int) -> None:
        self.inline.note([c for c in changes if self.rules.syncs(c["path"])])
        news: dict[str, RemoteFile | None] = {}
        for change in changes:
            if change["op"] == "move" and change.get("old_path"):
                news[change["old_path"]] = None
            if change["op"] == "delete":
                news[change["path"]] = None
            else:
                news[change["path"]] = RemoteFile(
                    int(change["seq"]), str(change["sha256"]), int(change["size"])
                )
        self._note_changes({p: f for p, f in news.items() if self.rules.syncs(p)}, cursor)

    def _note_changes(self, news: dict[str, RemoteFile | None], cursor: int) -> None:
        with self._cv:
            self._hints.update(news)
            self._batches.append(_Batch(cursor, set(news)))
            for rel in news:
                self._enqueue_locked(rel)
            self._advance()
        if cursor > self.board.status.head:
            self.board.update(head=cursor)

    def _on_feed_state(self, problem: str | None) -> None:
        if problem is not None:
            self.board.update(last_error=problem)

    # --- the queue -----------------------------------------------------------------------

    def _enqueue(self, rel: str) -> None:
        with self._cv:
            self._enqueue_locked(rel)

    def _enqueue_locked(self, rel: str) -> None:
        if rel in self._busy:
            self._again.add(rel)
        elif rel not in self._queued:
            self._queued.add(rel)
            priority = 0 if rel.endswith(_RPC_SUFFIXES) else 1
            heapq.heappush(self._heap, (priority, next(self._order), rel))
            self._cv.notify()

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                _, _, rel = heapq.heappop(self._heap)
                self._queued.discard(rel)
                self._busy.add(rel)
                hint = self._hints.pop(rel, _UNKNOWN)
            settled = self._attempt(rel, hint)
            with self._cv:
                self._busy.discard(rel)
                if not settled:
                    if rel not in self._hints and hint is not _UNKNOWN:
                        self._hints[rel] = hint
                elif rel not in self._again:
                    for batch in self._batches:
                        batch.paths.discard(rel)
                    self._advance()
                if rel in self._again:
                    self._again.discard(rel)
                    self._enqueue_locked(rel)
                if not self._heap and not self._busy:  # for wait_idle; not a herd per path
                    self._cv.notify_all()

    def _advance(self) -> None:
        """Save the cursor of the newest batch whose paths are all settled (lock held)."""
        cursor = None
        while self._batches and not self._batches[0].paths:
            cursor = self._batches.popleft().cursor
        if cursor is not None:
            self.journal.set_meta("cursor", str(cursor))
            self.board.status.cursor = cursor

    def _attempt(self, rel: str, hint: Any) -> bool:
        """Sync one path; False if it must be tried again later (hub away, disk full)."""
        try:
            self._sync(rel, hint)
        except HubAway as exc:
            with self._cv:
                tries = self._tries.get(rel, 0)
                self._tries[rel] = tries + 1
                self._retry[rel] = time.monotonic() + min(0.1 * 2**tries, 2.0)
            self.board.update(last_error=str(exc))
            return False
        except NoSpace as exc:
            logger.warning("%s", exc)
            with self._cv:
                self._deferred[rel] = time.monotonic() + _DEFERRED_RETRY
            self.board.note("refused", path=rel, reason=str(exc))
            return False
        except (FedboxError, OSError) as exc:
            logger.error("sync of %s failed: %s", rel, exc)
            self.board.update(last_error=f"{rel}: {exc}")
        with self._cv:
            self._tries.pop(rel, None)
        return True

    def _housekeeping(self) -> None:
        """Re-queue paths whose retry time came, and publish the status."""
        while True:
            with self._cv:
                if self._stopping:
                    return
                now = time.monotonic()
                for waiting in (self._retry, self._deferred):
                    for rel in [rel for rel, when in waiting.items() if when <= now]:
                        del waiting[rel]
                        self._enqueue_locked(rel)
                self._cv.wait(0.05)
            self._publish()

    def _publish(self) -> None:
        with self._cv:
            downloads = sum(1 for rel in self._queued | self._busy if rel in self._hints)
            pending = len(self._queued) + len(self._busy)
        self.board.update(
            pending_downloads=downloads,
            pending_uploads=pending - downloads,
            caught_up=pending == 0,
        )

    # --- one path ------------------------------------------------------------------------

    def _sync(self, rel: str, hint: Any) -> None:
        full = self.root / rel
        for _ in range(8):
            base = self.journal.get(rel)
            if hint is _UNKNOWN:
                remote = None if base is None else RemoteFile(base.version, base.sha256, base.size)
            else:
                remote = hint
            known = None if base is None or base.absent else (base.size, base.mtime_ns, base.sha256)
            local = local_file(full, known)
            action = decide(local, base, remote)
            try:
                self._apply(rel, action, local, base, remote)
                return
            except Stale:
                hint = self.remote.stat(rel)  # someone else wrote first: decide again
            except NotFound:
                hint = None  # gone from the hub while we looked
            except ChangedMeanwhile:
                hint = remote
            except Refused as exc:
                if action is Action.UPLOAD:
                    self._reject(rel, str(exc))
                elif action is Action.DELETE_REMOTE:
                    assert base is not None
                    logger.info("keeping %s on the hub: %s", rel, exc)
                    self.journal.put(rel, replace(base, absent=True))
                else:
                    raise
                return
        raise StoreError(f"{rel} kept changing while it synced; it will be tried again", rel)

    def _apply(
        self,
        rel: str,
        action: Action,
        local: LocalFile | None,
        base: Synced | None,
        remote: RemoteFile | None,
    ) -> None:
        full = self.root / rel
        if action is Action.NOTHING:
            return
        if action is Action.FORGET:
            self.journal.drop(rel)
        elif action is Action.ADOPT:
            assert local is not None and remote is not None
            self.journal.put(rel, Synced(remote.version, remote.sha256, local.size, local.mtime_ns))
        elif action is Action.UPLOAD:
            assert local is not None
            try:
                info = self.uploads.upload(
                    rel, full, local, None if remote is None else remote.version
                )
            except FileNotFoundError as exc:
                raise ChangedMeanwhile(f"{rel} went away while it uploaded") from exc
            self.journal.put(rel, Synced(info.version, info.sha256, local.size, local.mtime_ns))
            self.board.count("uploaded")
            self.board.clear("rejected", rel)
            if is_rules_path(rel):
                self._reannounce(rel.rsplit("/", 1)[0])
        elif action is Action.DOWNLOAD:
            assert remote is not None
            self._download(rel, remote, local)
        elif action is Action.DELETE_LOCAL:
            assert local is not None
            if not remove(full, local):
                raise ChangedMeanwhile(f"{rel} changed while it was deleted")
            self.journal.drop(rel)
            self.board.count("deleted")
        elif action is Action.DELETE_REMOTE:
            assert remote is not None
            self.remote.delete(rel, remote.version)
            self.journal.drop(rel)
            self.board.count("deleted")
        elif action is Action.CONFLICT:
            assert remote is not None
            copy = keep_aside(self.root, rel, "conflict")
            logger.warning("%s changed here and on the hub: yours is kept as %s", rel, copy)
            self.board.note("conflicts", path=rel, copy=copy)
            self._download(rel, remote, None)

    def _reannounce(self, folder: str) -> None:
        """Our rule file there changed: files below that others could not read before
        get a new version, so the feed brings them to whoever may read them now."""
        for rel in self.journal.under(folder):
            base = self.journal.get(rel)
            if base is None or base.absent or is_rules_path(rel):
                continue
            try:
                info = self.remote.reannounce(rel, base.version)
            except (Stale, Refused, NotFound):
                continue  # changed or not ours: its own change already told the readers
            with self._cv:  # the path's own worker adopts the new version
                self._hints[rel] = info
                self._enqueue_locked(rel)

    def _download(self, rel: str, remote: RemoteFile, local: LocalFile | None) -> None:
        inline = self.inline.take(rel, remote.version)
        with staged(self.root, rel, remote.size, self.options.min_free) as (temp, target):
            with open(temp, "wb") as sink:
                if inline is None:
                    got = self.remote.download(rel, sink)
                else:  # it came with the feed; place() checks it against the feed's sha256
                    sink.write(inline)
                    got = remote
            placed = place(temp, target, got.sha256, local)
        self.journal.put(rel, Synced(got.version, got.sha256, placed.size, placed.mtime_ns))
        self.board.count("downloaded")
        self.board.clear("refused", rel)

    def _reject(self, rel: str, reason: str) -> None:
        """The hub's rules forbid our write: set the file aside, restore the hub's."""
        copy = keep_aside(self.root, rel, "rejected")
        logger.warning("the hub refused %s (%s); kept as %s", rel, reason, copy)
        self.board.note("rejected", path=rel, copy=copy, reason=reason)
        current = self.remote.stat(rel)
        if current is None:
            self.journal.drop(rel)
        else:
            with contextlib.suppress(NotFound):
                self._download(rel, current, None)
