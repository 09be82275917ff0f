"""One path brought in step: :func:`~fedbox.hub.sync.reconcile.decide` applied, with its
transfers, conflict and rejected copies, and renames paired by
:mod:`~fedbox.hub.sync.renames`.

Uploads are conditional on the version the journal (or the feed) last saw, so a write
that raced another participant's comes back 412 and becomes a conflict copy instead of
overwriting; the decision is then made again on what the hub holds now.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from fedbox.errors import NotFound, StoreError
from fedbox.hub.sync.batch import UploadBatcher
from fedbox.hub.sync.copies import keep_aside
from fedbox.hub.sync.echoes import OwnPlacements
from fedbox.hub.sync.emptied import remove_emptied
from fedbox.hub.sync.inline import InlineBytes
from fedbox.hub.sync.journal import Journal, Synced
from fedbox.hub.sync.reconcile import Action, LocalFile, RemoteFile, decide
from fedbox.hub.sync.remote import Refused, Stale, SyncRemote
from fedbox.hub.sync.renames import Renames, rename_local
from fedbox.hub.sync.status import StatusBoard
from fedbox.hub.sync.transfer import ChangedMeanwhile, local_file, place, remove, staged
from fedbox.hub.sync.worklist import UNKNOWN
from fedbox.store import LocalStore

__all__ = ["Paired", "PathSettler", "TooSoon"]

logger = logging.getLogger(__name__)


class Paired(Exception):
    """The path was renamed; the worker of its destination settles it (and queues it)."""


class TooSoon(Exception):
    """The path went away a moment ago: it may yet pair with a rename's destination."""

    def __init__(self, wait: float) -> None:
        self.wait = wait


class PathSettler:
    """Brings single paths of ``root`` in step with the hub (thread-safe: one path per
    worker at a time); ``requeue`` queues a path again."""

    def __init__(
        self,
        root: Path,
        journal: Journal,
        remote: SyncRemote,
        board: StatusBoard,
        renames: Renames,
        min_free: int,
        requeue: Callable[[str], None],
        uploads: UploadBatcher,
        inline: InlineBytes,
        placements: OwnPlacements,
    ) -> None:
        self.root = root
        self.folder = LocalStore(root, watch_mode="poll")
        """The folder's own operations (its emptied folders' removal), link-safe."""
        self.journal = journal
        self.remote = remote
        self.uploads = uploads
        self.inline = inline
        self.placements = placements
        self.board = board
        self.renames = renames
        self._min_free = min_free
        self._requeue = requeue

    def sync(self, rel: str, hint: Any) -> None:
        """Settle one path (``hint``: what the feed said of it, or :data:`UNKNOWN`);
        :class:`Paired` or :class:`TooSoon` if it must wait."""
        if self.renames.is_source(rel):
            raise Paired
        source = self.renames.take(rel)
        try:
            self._settle(rel, hint, source)
        finally:
            if source is not None:  # moved with it or not: the source's turn now
                self.renames.done(source)
                self._requeue(source)

    def _settle(self, rel: str, hint: Any, source: str | None) -> None:
        full = self.root / rel
        for _ in range(8):
            base = self.journal.get(rel)
            if hint is UNKNOWN:
                remote = None if base is None else RemoteFile(base.version, base.sha256, base.size)
            else:
                remote = hint
            known = None if base is None or base.absent else (base.size, base.mtime_ns, base.sha256)
            local = local_file(full, known)
            action = decide(local, base, remote)
            if source is not None:
                moved, source = self._moved(rel, source, action, local, remote), None
                if moved:
                    return
            if action is Action.DELETE_REMOTE:
                assert base is not None  # what goes from the hub is what the journal held
                if wait := self.renames.wait_left(rel, base):
                    raise TooSoon(wait)
            try:
                self._apply(rel, action, local, base, remote)
                self.renames.settled(rel)
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
        elif action is Action.DOWNLOAD:
            assert remote is not None
            self._download(rel, remote, local)
        elif action is Action.DELETE_LOCAL:
            assert local is not None
            if not remove(full, local):
                raise ChangedMeanwhile(f"{rel} changed while it was deleted")
            self.journal.drop(rel)
            self.board.count("deleted")
            remove_emptied(self.folder, rel)
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

    def _moved(
        self,
        rel: str,
        source: str,
        action: Action,
        local: LocalFile | None,
        remote: RemoteFile | None,
    ) -> bool:
        """Settle ``rel`` as ``source`` renamed, if the bytes are the same: a local rename
        becomes one hub move, a hub move one local rename. False if it cannot be (then
        both paths are synced one by one)."""
        was = self.journal.get(source)
        if was is None or was.absent:
            return False
        if action is Action.UPLOAD and local is not None and remote is None:
            if local.sha256 != was.sha256 or (self.root / source).exists():
                return False
            try:
                info = self.remote.move(source, rel, was.version)
            except (Stale, Refused, NotFound) as exc:
                logger.info("moving %s to %s on the hub: %s; uploading instead", source, rel, exc)
                return False
            placed = Synced(info.version, info.sha256, local.size, local.mtime_ns)
        elif action is Action.DOWNLOAD and local is None and remote is not None:
            same = LocalFile(was.sha256, was.size, was.mtime_ns)
            if remote.sha256 != was.sha256 or not rename_local(self.root, source, rel, same):
                return False
            placed = Synced(remote.version, remote.sha256, was.size, was.mtime_ns)
        else:
            return False
        self.journal.put(rel, placed)
        self.journal.drop(source)
        self.board.count("moved")
        if action is Action.DOWNLOAD:  # the source left its folder here
            remove_emptied(self.folder, source)
        return True

    def _download(self, rel: str, remote: RemoteFile, local: LocalFile | None) -> None:
        inline = self.inline.take(rel, remote.version)
        with staged(self.root, rel, remote.size, self._min_free) as (temp, target):
            with open(temp, "wb") as sink:
                if inline is None:
                    got = self.remote.download(rel, sink)
                else:  # it came with the feed; place() checks it against the feed's sha256
                    sink.write(inline)
                    got = remote
            placed = place(temp, target, got.sha256, local, self.placements)
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
