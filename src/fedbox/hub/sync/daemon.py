"""The sync daemon: a folder and a hub kept in step, path by path.

How it runs:

1. **Start.** The folder watcher starts first (nothing written meanwhile is missed),
   then one walk of the folder compares each file's (size, mtime) with the journal:
   only files that differ are hashed and considered. On the hub side, a first sync lists
   the readable files once; every later start reads the change feed from the journal's
   cursor. So a restart with nothing changed costs O(1) requests, not O(files).
2. **Run.** Paths touched by OS events or the pushed feed go into one queue
   (:mod:`~fedbox.hub.sync.worklist`). Worker threads take them, one worker per path at a
   time, and settle each (:mod:`~fedbox.hub.sync.settler`).
3. **Cursor.** A feed batch's cursor is saved only once every path in it is settled, so
   a crash re-reads changes rather than losing them.

See the package docstring for the rest.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from fedbox.errors import FedboxError
from fedbox.hub.sync.batch import UploadBatcher
from fedbox.hub.sync.echoes import OwnPlacements
from fedbox.hub.sync.feed import FeedFollower
from fedbox.hub.sync.ignore import IGNORE_FILE, SyncRules
from fedbox.hub.sync.inline import InlineBytes
from fedbox.hub.sync.journal import Journal
from fedbox.hub.sync.local import FolderWatcher, walk
from fedbox.hub.sync.options import SyncOptions
from fedbox.hub.sync.reconcile import RemoteFile
from fedbox.hub.sync.remote import HubAway, SyncRemote
from fedbox.hub.sync.renames import Renames
from fedbox.hub.sync.settler import Paired, PathSettler, TooSoon
from fedbox.hub.sync.status import STATE_DIR, StatusBoard, SyncStatus
from fedbox.hub.sync.transfer import NoSpace
from fedbox.hub.sync.worklist import WorkList

__all__ = ["SyncDaemon", "SyncOptions"]

logger = logging.getLogger(__name__)

_DEFERRED_RETRY = 5.0
_IGNORE_CHECK = 1.0
"""Seconds between looks at ``.fedboxignore`` (hidden: no folder event reports it)."""


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
        self.journal = Journal(self.root / STATE_DIR / "journal.db")
        self.inline = InlineBytes()
        self.placements = OwnPlacements(self.root)
        self.renames = Renames()
        self.board = StatusBoard(
            self.root,
            SyncStatus(str(self.root), self.remote.login.url, options.email, os.getpid()),
        )
        self.work = WorkList(self._save_cursor)
        self.settler = PathSettler(
            self.root, self.journal, self.remote, self.board, self.renames, options.min_free,
            self.work.add, UploadBatcher(self.remote), self.inline, self.placements,
        )  # fmt: skip
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
        self.board.update(running=True, started=time.time(), ignores_read=time.time())
        self._watcher = FolderWatcher(self.root, self._touched, self._removed, self.options.poll)
        self.board.update(events=self._watcher.events)
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
        return self.work.wait_idle(timeout)

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        if self._feed is not None:
            self._feed.close()
        self.work.stop()
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
                self.work.add(rel)
        for rel, base in known.items():
            if not base.absent and not (self.root / rel).is_file():
                self.work.add(rel)
        return cursor

    def _touched(self, rel: str) -> None:
        if self.placements.is_echo(rel):  # a download's own rename: its worker settles it
            return
        if self.rules.syncs(rel):
            if self.renames.expecting():
                self._came(rel)
            self.work.add(rel)

    def _came(self, rel: str) -> None:
        """A file appeared while others had just gone: it may be one of them renamed."""
        try:
            st = os.stat(self.root / rel, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return
        base = self.journal.get(rel)
        if base is None or base.absent:
            self.renames.came(rel, st.st_size, st.st_mtime_ns)

    def _removed(self, rel: str) -> None:
        """A file or a whole folder went away (deleted, or renamed out of the tree)."""
        for gone in [rel, *self.journal.under(rel)]:
            base = self.journal.get(gone)
            if base is not None and not base.absent and self.rules.syncs(gone):
                self.renames.went(gone, base)
            self._touched(gone)
        self.work.again_inside(rel)

    def _on_changes(self, changes: list[dict[str, Any]], cursor: int) -> None:
        self.inline.note([c for c in changes if self.rules.syncs(c["path"])])
        news: dict[str, RemoteFile | None] = {}
        relisted: list[str] = []
        puts: set[str] = set()  # last changed by a put (a move's ends are paired instead)
        for change in changes:
            if change["op"] == "rules":
                relisted.append(change["path"])
                continue
            if change["op"] == "move" and change.get("old_path"):
                news[change["old_path"]] = None
                puts.discard(change["old_path"])
                self.renames.pair(change["old_path"], change["path"])
            if change["op"] == "delete":
                news[change["path"]] = None
            else:
                news[change["path"]] = RemoteFile(
                    int(change["seq"]), str(change["sha256"]), int(change["size"])
                )
            if change["op"] == "put":
                puts.add(change["path"])
            else:
                puts.discard(change["path"])
        for folder in relisted:  # the hub listed all we may read there: the rest we may not
            for rel in self.journal.under(folder):
                news.setdefault(rel, None)
        for rel in self._settled_already(news, puts):
            del news[rel]
        self._note_changes({p: f for p, f in news.items() if self.rules.syncs(p)}, cursor)

    def _settled_already(self, news: dict[str, RemoteFile | None], puts: set[str]) -> list[str]:
        """The puts of ``news`` whose very version the journal holds already: mostly this
        daemon's own uploads coming back through the feed. Settling them again would
        conclude "nothing to do" (the hub's side is as the journal says; a change here
        has its own folder event), at the cost of a worker's visit per uploaded file."""
        held = self.journal.get_many(sorted(puts))
        return [
            rel
            for rel, base in held.items()
            if not base.absent
            and (remote := news[rel]) is not None
            and (remote.version, remote.sha256) == (base.version, base.sha256)
        ]

    def _note_changes(self, news: dict[str, RemoteFile | None], cursor: int) -> None:
        self.work.note(news, cursor)
        if cursor > self.board.status.head:
            self.board.update(head=cursor)

    def _on_feed_state(self, problem: str | None) -> None:
        if problem is not None:
            self.board.update(last_error=problem)

    # --- the workers -------------------------------------------------------------------

    def _work(self) -> None:
        while (taken := self.work.take()) is not None:
            rel, hint = taken
            self.work.done(rel, hint, self._attempt(rel, hint))

    def _save_cursor(self, cursor: int) -> None:
        self.journal.set_meta("cursor", str(cursor))
        self.board.status.cursor = cursor

    def _attempt(self, rel: str, hint: Any) -> bool:
        """Sync one path; False if it must be tried again later (hub away, disk full)."""
        try:
            if self.rules.syncs(rel):  # else ignored since it was queued
                self.settler.sync(rel, hint)
        except Paired:
            return False
        except TooSoon as exc:
            self.work.retry_in(rel, exc.wait)
            return False
        except HubAway as exc:
            self.work.back_off(rel)
            self.board.update(last_error=str(exc))
            return False
        except NoSpace as exc:
            logger.warning("%s", exc)
            self.work.defer(rel, _DEFERRED_RETRY)
            self.board.note("refused", path=rel, reason=str(exc))
            return False
        except (FedboxError, OSError) as exc:
            logger.error("sync of %s failed: %s", rel, exc)
            self.board.update(last_error=f"{rel}: {exc}")
        self.work.succeeded(rel)
        return True

    def _housekeeping(self) -> None:
        """Re-queue paths whose retry time came, publish the status, and notice a changed
        ignore file."""
        next_look = time.monotonic() + _IGNORE_CHECK
        while self.work.tick():
            self._publish()
            if time.monotonic() >= next_look:
                self._reload_ignores()
                next_look = time.monotonic() + _IGNORE_CHECK

    def _reload_ignores(self) -> None:
        """Apply a changed ``.fedboxignore``: newly ignored paths stop syncing (their
        copies stay on both sides); newly included ones are reconciled like at a first
        sync, from one listing of the hub and one walk of the folder."""
        before = self.rules
        after = before.reloaded()
        cursor = self.work.newest_cursor
        if after is None or cursor is None:  # unchanged, or the start is still running
            return
        try:
            listed = self.remote.listing()
        except HubAway as exc:
            self.board.update(last_error=str(exc))
            return  # the rules stay as they were: the next look tries again

        def newly(rel: str) -> bool:
            return after.syncs(rel) and not before.syncs(rel)

        news: dict[str, RemoteFile | None] = {p: f for p, f in listed.items() if newly(p)}
        news.update({p: None for p in self.journal.all() if p not in news and newly(p)})
        self.rules = after
        logger.info("%s changed: %d paths sync again", IGNORE_FILE, len(news))
        self._note_changes(news, cursor)
        for rel in walk(self.root):
            if rel not in news and newly(rel):
                self.work.add(rel)
        self.board.update(ignores_read=time.time())

    def _publish(self) -> None:
        downloads, pending = self.work.pending()
        self.board.update(
            pending_downloads=downloads,
            pending_uploads=pending - downloads,
            caught_up=pending == 0,
        )
