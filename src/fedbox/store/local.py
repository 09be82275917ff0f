"""A store on a local (or network-mounted) folder: the shared-disk transport."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from fedbox.errors import InvalidIdentity, NotFound, StoreError
from fedbox.store._atomic import atomic_file, atomic_link, atomic_write, is_temp_name
from fedbox.store.base import DEFAULT_POLL_INTERVAL, Entry, FolderFilter
from fedbox.store.polling import folder_matcher, in_folders
from fedbox.store.watchers import PollWatcher, _WatcherBase, event_watcher

__all__ = ["LocalStore", "WatchMode"]

logger = logging.getLogger(__name__)

WatchMode = Literal["auto", "events", "poll"]


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

    def _abs(self, path: str) -> Path:
        """Map a store path to the OS, refusing anything that would leave the root."""
        text = str(path)
        if "\x00" in text or "\\" in text or text.startswith("/"):
            raise InvalidIdentity(f"store path {text!r} must be relative POSIX", text)
        parts = PurePosixPath(text).parts
        if ".." in parts:
            raise InvalidIdentity(f"store path {text!r} contains '..'", text)
        return self.root.joinpath(*parts)

    def put(self, path: str, data: bytes | BinaryIO) -> None:
        try:
            atomic_write(self._abs(path), data, fsync=self.fsync)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc}", path) from exc

    @contextmanager
    def writer(self, path: str) -> Iterator[BinaryIO]:
        with atomic_file(self._abs(path), fsync=self.fsync) as f:
            yield f

    def open(self, path: str) -> BinaryIO:
        try:
            return open(self._abs(path), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"no such file in store: {path}", path) from exc
        except OSError as exc:
            raise StoreError(f"cannot open {path}: {exc}", path) from exc

    def read(self, path: str) -> bytes:
        with self.open(path) as f:
            return f.read()

    def exists(self, path: str) -> bool:
        return self._abs(path).is_file()

    def list(self, prefix: str = "", suffix: str = "") -> list[Entry]:
        return self._entries(
            prefix, lambda name: not name.startswith(".") and name.endswith(suffix)
        )

    def list_temps(self, prefix: str = "") -> list[Entry]:
        return self._entries(prefix, is_temp_name)

    def _entries(self, prefix: str, keep: Callable[[str], bool]) -> list[Entry]:
        """Files under ``prefix`` whose names ``keep`` accepts, outside dot-folders."""
        base = self._abs(prefix) if prefix else self.root
        entries: list[Entry] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if not keep(name):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue  # deleted (or renamed, a temp file) since the walk saw it
                rel = Path(full).relative_to(self.root).as_posix()
                entries.append(Entry(path=rel, size=st.st_size, mtime=st.st_mtime))
        return entries

    def list_dirs(self, prefix: str = "") -> list[str]:
        base = self._abs(prefix) if prefix else self.root
        try:
            with os.scandir(base) as it:
                return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return []

    def delete(self, path: str) -> None:
        try:
            self._abs(path).unlink()
        except FileNotFoundError as exc:
            raise NotFound(f"no such file in store: {path}", path) from exc

    def move(self, src: str, dst: str) -> None:
        target = self._abs(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self._abs(src), target)
        except FileNotFoundError as exc:
            raise NotFound(f"no such file in store: {src}", src) from exc

    def link(self, src: str, dst: str) -> None:
        """A hard link: one inode, the bytes on disk once however many messages share them."""
        try:
            linked = atomic_link(self._abs(src), self._abs(dst), fsync=self.fsync)
        except FileNotFoundError as exc:
            raise NotFound(f"no such file in store: {src}", src) from exc
        except OSError as exc:
            raise StoreError(f"cannot link {src} to {dst}: {exc}", dst) from exc
        if not linked:
            logger.debug("no hard links under %s: copied %s to %s", self.root, src, dst)

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
            return event_watcher(self.root, prefix, suffixes, accept)
        except OSError as exc:
            if self.watch_mode == "events":
                raise StoreError(f"file events unavailable for {self.root}: {exc}") from exc
            logger.warning("file events unavailable for %s (%s); polling instead", self.root, exc)
            return self._poll_watcher(prefix, suffixes, match)

    def _poll_watcher(
        self, prefix: str, suffixes: tuple[str, ...], match: Callable[[str], bool] | None
    ) -> PollWatcher:
        def lister() -> list[Entry]:
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
        return self._abs(path)

    def close(self) -> None:
        """Nothing to release: watchers are closed by their owners."""

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
