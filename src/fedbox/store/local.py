"""A store on a local (or network-mounted) folder: the shared-disk transport."""

from __future__ import annotations

import builtins
import io
import logging
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from fedbox.datasite.paths import split_store_path
from fedbox.errors import NotFound, StoreError
from fedbox.store._atomic import atomic_file, copy_contents, create_temp, is_temp_name, write_all
from fedbox.store._beneath import folder, open_folder, open_regular
from fedbox.store.base import (
    DEFAULT_POLL_INTERVAL,
    Entry,
    FolderFilter,
    StoreCapabilities,
    WatchMode,
)
from fedbox.store.polling import folder_matcher, in_folders
from fedbox.store.registry import url_scheme
from fedbox.store.watchers import PollWatcher, _WatcherBase, event_watcher

__all__ = ["LocalStore", "open_local"]

logger = logging.getLogger(__name__)

_CREATE_TRIES = 5
"""Walks to a new file's folder before giving up, when a cleanup keeps removing it."""


def open_local(
    root: str | os.PathLike[str],
    *,
    watch_mode: WatchMode = "auto",
    poll_interval: float | None = None,
    fsync: bool = True,
    **_remote_tuning: Any,
) -> LocalStore:
    """The registry's factory for folder paths and ``file://`` URLs (remote stores'
    tuning, ``max_poll_interval`` and ``retry_timeout``, means nothing here)."""
    text = os.fspath(root)
    path = Path(url2pathname(unquote(urlsplit(text).path))) if url_scheme(text) else Path(text)
    return LocalStore(
        path,
        watch_mode=watch_mode,
        poll_interval=DEFAULT_POLL_INTERVAL if poll_interval is None else poll_interval,
        fsync=fsync,
    )


class LocalStore:
    """Files under ``root``. Writes are atomic and fsync'd; watching uses OS events.

    ``watch_mode="poll"`` lists the folder every ``poll_interval`` seconds instead, for
    network filesystems whose events do not cross machines (NFS, SMB, some FUSE mounts).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        watch_mode: WatchMode = "auto",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        fsync: bool = True,
    ) -> None:
        if watch_mode not in ("auto", "events", "poll"):
            raise ValueError(f"watch_mode must be 'auto', 'events' or 'poll', not {watch_mode!r}")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.watch_mode: WatchMode = watch_mode
        self.poll_interval = poll_interval
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r}, watch_mode={self.watch_mode!r})"

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(events=self.watch_mode != "poll", cheap_exists=True)

    def _abs(self, path: str) -> Path:
        """The OS path of a store path (for events and :meth:`local_path`, never opened)."""
        return self.root.joinpath(*split_store_path(path, "store path", root_ok=True))

    @staticmethod
    def _split(path: str) -> tuple[tuple[str, ...], str]:
        """(folders, file name) of a store path naming a file."""
        parts = split_store_path(path, "store path")
        return parts[:-1], parts[-1]

    @contextmanager
    def writer(self, path: str) -> Iterator[BinaryIO]:
        """A file that appears at ``path`` whole when the block exits cleanly, made in
        its folder as reached without links (folders made as needed, again if a cleanup
        removes one meanwhile)."""
        folders, name = self._split(path)
        for _ in range(_CREATE_TRIES):
            try:
                dir_fd = open_folder(self.root, folders, path, create=True, readable=self.fsync)
            except NotFound:
                # A folder (or the root itself) was removed while we walked: again.
                self.root.mkdir(parents=True, exist_ok=True)
                continue
            try:
                fd, tmp = create_temp(dir_fd, name)
            except FileNotFoundError:
                os.close(dir_fd)
                continue  # the folder was removed (emptied by a cleanup) after we opened it
            except BaseException:
                os.close(dir_fd)
                raise
            try:
                with atomic_file(dir_fd, fd, tmp, name, fsync=self.fsync) as f:
                    yield f
            finally:
                os.close(dir_fd)
            return
        raise StoreError(f"cannot write {path}: its folder keeps vanishing", path)

    def put(self, path: str, data: bytes | BinaryIO) -> None:
        try:
            with self.writer(path) as f:
                write_all(f, data)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc}", path) from exc

    def _open_fd(self, path: str) -> int:
        folders, name = self._split(path)
        with folder(self.root, folders, path) as dir_fd:
            return open_regular(dir_fd, name, path)

    def open(self, path: str) -> io.BufferedIOBase:
        """Only a regular file with one link, reached through real folders: anything else
        (a FIFO, a link, a hard link) raises :class:`fedbox.errors.UnsafeFile`, unread."""
        return os.fdopen(self._open_fd(path), "rb")

    def read(self, path: str) -> bytes:
        with self.open(path) as f:
            return f.read()

    def exists(self, path: str) -> bool:
        """Whether a regular file is there (a link, FIFO or folder is not one)."""
        folders, name = self._split(path)
        try:
            with folder(self.root, folders, path) as dir_fd:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except (StoreError, FileNotFoundError, NotADirectoryError):
            return False
        return stat.S_ISREG(st.st_mode)

    def list(self, prefix: str = "", suffix: str = "") -> builtins.list[Entry]:
        return self._entries(
            prefix, lambda name: not name.startswith(".") and name.endswith(suffix)
        )

    def list_temps(self, prefix: str = "") -> builtins.list[Entry]:
        return self._entries(prefix, is_temp_name)

    def _entries(self, prefix: str, keep: Callable[[str], bool]) -> builtins.list[Entry]:
        """Entries under ``prefix`` that are not folders, whose names ``keep`` accepts,
        outside dot-folders. Links and FIFOs are listed (as themselves) so that readers
        find and quarantine them; no link to a folder is ever descended into."""
        parts = split_store_path(prefix, "store path", root_ok=True)
        try:
            base = open_folder(self.root, parts, prefix, readable=True)
        except StoreError:
            return []  # missing, or reached through a link: nothing to list
        lead = "/".join(parts)
        entries: list[Entry] = []
        try:
            for dirpath, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=base):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel_dir = "/".join(p for p in (lead, dirpath[2:]) if p)
                for name in filenames:
                    if not keep(name):
                        continue
                    try:
                        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # deleted (or renamed, a temp file) since the walk saw it
                    rel = f"{rel_dir}/{name}" if rel_dir else name
                    entries.append(Entry(path=rel, size=st.st_size, mtime=st.st_mtime))
        finally:
            os.close(base)
        return entries

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        parts = split_store_path(prefix, "store path", root_ok=True)
        try:
            with (
                folder(self.root, parts, prefix, readable=True) as dir_fd,
                os.scandir(dir_fd) as it,
            ):
                return sorted(
                    e.name
                    for e in it
                    if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
                )
        except StoreError:
            return []

    def delete(self, path: str) -> None:
        """Remove the entry at ``path`` itself (a link is removed, never what it names)."""
        folders, name = self._split(path)
        with folder(self.root, folders, path) as dir_fd:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError as exc:
                raise NotFound(f"no such file in store: {path}", path) from exc
            except OSError as exc:
                raise StoreError(f"cannot delete {path}: {exc}", path) from exc

    def remove_folder(self, path: str) -> bool:
        folders, name = self._split(path)
        try:
            with folder(self.root, folders, path) as dir_fd:
                os.rmdir(name, dir_fd=dir_fd)
        except (StoreError, OSError):
            return False  # not empty, gone, a link, or not a folder: all left as they are
        return True

    def move(self, src: str, dst: str) -> None:
        """Rename the entry at ``src`` itself (a FIFO or link is moved, not opened) into
        ``dst``'s folder, made if needed; neither path may pass through a link."""
        src_folders, src_name = self._split(src)
        dst_folders, dst_name = self._split(dst)
        with (
            folder(self.root, src_folders, src) as src_fd,
            folder(self.root, dst_folders, dst, create=True) as dst_fd,
        ):
            try:
                os.replace(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            except FileNotFoundError as exc:
                raise NotFound(f"no such file in store: {src}", src) from exc
            except OSError as exc:
                raise StoreError(f"cannot move {src} to {dst}: {exc}", src) from exc

    def link(self, src: str, dst: str) -> None:
        """A copy of its own for ``dst``: a reflink where the filesystem shares blocks
        (btrfs, XFS), else an in-kernel copy. Never a hard link: one recipient
        writing its copy must not change what another reads (issue 11.11)."""
        src_fd = self._open_fd(src)
        try:
            with self.writer(dst) as f:
                cloned = copy_contents(src_fd, f.fileno())
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot copy {src} to {dst}: {exc}", dst) from exc
        finally:
            os.close(src_fd)
        if not cloned:
            logger.debug("no reflinks under %s: copied %s to %s", self.root, src, dst)

    def watch(
        self,
        prefix: str = "",
        suffixes: tuple[str, ...] = (),
        *,
        folders: FolderFilter | None = None,
    ) -> _WatcherBase:
        match = folder_matcher(folders)
        if self.watch_mode == "poll":
            return self._poll_watcher(prefix, suffixes, match)
        accept = None if match is None else (lambda rel: in_folders(rel, prefix, match))
        try:
            top = match if not prefix.strip("/") else None
            return event_watcher(self.root, prefix, suffixes, accept, top)
        except OSError as exc:
            if self.watch_mode == "events":
                raise StoreError(f"file events unavailable for {self.root}: {exc}") from exc
            logger.warning("file events unavailable for %s (%s); polling instead", self.root, exc)
            return self._poll_watcher(prefix, suffixes, match)

    def _poll_watcher(
        self, prefix: str, suffixes: tuple[str, ...], match: Callable[[str], bool] | None
    ) -> PollWatcher:
        def lister() -> builtins.list[Entry]:
            if match is None:
                bases = [prefix]
            else:
                lead = f"{prefix.rstrip('/')}/" if prefix else ""
                bases = [f"{lead}{d}" for d in self.list_dirs(prefix) if match(d)]
            return [
                e
                for base in bases
                for e in self.list(base)
                if not suffixes or e.path.endswith(suffixes)
            ]

        return PollWatcher(lister, self.poll_interval)

    def local_path(self, path: str) -> Path | None:
        """The OS path, for a quick size check; it is not checked for links, so open
        the file through :meth:`open`, which is."""
        return self._abs(path)

    def close(self) -> None:
        """Nothing to release: watchers are closed by their owners."""

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
