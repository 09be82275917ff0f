"""A store on anything fsspec reaches: object stores, WebDAV, SFTP, Drive, memory.

Three things make a remote store usable as a message transport, and live here rather
than in each backend: messages appear whole (a local buffer uploaded in one PUT, or a
dot-file renamed into place), outages are waited out with bounded backoff while refusals
are reported at once, and arrivals are found by adaptive polling of only the folders the
caller cares about.
"""

from __future__ import annotations

import builtins
import io
import logging
import shutil
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from os import PathLike, fspath
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

from fedbox.datasite.paths import split_store_path
from fedbox.errors import InvalidIdentity, NotFound, StoreError
from fedbox.store._atomic import is_temp_name, temp_name
from fedbox.store._retry import Failure, Outage, classify, retrying
from fedbox.store.backends import Backend, FileSystem
from fedbox.store.base import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_MIN_POLL_INTERVAL,
    DEFAULT_RETRY_TIMEOUT,
    Entry,
    FolderFilter,
    StoreCapabilities,
    WatchMode,
)
from fedbox.store.polling import AdaptivePollWatcher, FolderScan, LeafScan, folder_matcher
from fedbox.store.registry import get_backend, redact_url

__all__ = ["RemoteStore", "open_remote"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_KEEP_LIMIT = 1 << 20
"""Largest file a lookup by name keeps for the reader that follows (one GET then serves
both); bigger ones are read again, so memory stays bounded by :data:`_KEEP_FILES`."""
_KEEP_FILES = 16


def _checked(path: str) -> str:
    """``path`` if it passes the store path rule (``""``, the root, included)."""
    return "/".join(split_store_path(path, "store path", root_ok=True))


def _is_hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def _visible(*suffixes: str) -> Callable[[str], bool]:
    """Store paths outside dot-files and dot-folders, ending in one of ``suffixes``."""
    wanted = tuple(s for s in suffixes if s)
    return lambda rel: not _is_hidden(rel) and (not wanted or rel.endswith(wanted))


def _is_temp(rel: str) -> bool:
    """A writer's temporary file, not inside a dot-folder (quarantine keeps its own)."""
    folder, _, name = rel.rpartition("/")
    return is_temp_name(name) and not _is_hidden(folder)


def _mtime(info: dict[str, Any]) -> float:
    """Backends name and type the modification time differently; a missing one reads as
    "now", so a file of unknown age is never cleaned up early."""
    for key in ("mtime", "LastModified", "modified", "updated", "last_modified", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float) and value:
            return float(value)
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return datetime.now().timestamp()


def open_remote(
    root: str | PathLike[str],
    *,
    watch_mode: WatchMode = "auto",
    poll_interval: float | None = None,
    max_poll_interval: float | None = None,
    retry_timeout: float | None = None,
    fsync: bool = True,
    **storage_options: Any,
) -> RemoteStore:
    """The registry's factory for fsspec URLs (``fsync`` is the backend's business)."""
    tuning: dict[str, float] = {}
    if poll_interval is not None:
        tuning["min_poll_interval"] = poll_interval
    if max_poll_interval is not None:
        tuning["max_poll_interval"] = max_poll_interval
    if retry_timeout is not None:
        tuning["retry_timeout"] = retry_timeout
    return RemoteStore(fspath(root), **tuning, **storage_options)


class RemoteStore:
    """Message files on an fsspec filesystem named by ``url``.

    ``storage_options`` go to the backend (keys, endpoints, passwords: see the README).
    Every operation retries an unreachable store with exponential backoff for up to
    ``retry_timeout`` seconds, then raises StoreError; refused credentials raise
    StoreError at once. ``watch`` polls, between ``min_poll_interval`` while files keep
    arriving and ``max_poll_interval`` when idle. Pass ``fs`` to use an existing fsspec
    filesystem (for example to share one ``memory://`` between two stores).
    """

    def __init__(
        self,
        url: str,
        *,
        fs: FileSystem | None = None,
        min_poll_interval: float = DEFAULT_MIN_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
        **storage_options: Any,
    ) -> None:
        if not 0 < min_poll_interval <= max_poll_interval:
            raise ValueError("need 0 < min_poll_interval <= max_poll_interval")
        if retry_timeout < 0:
            raise ValueError("retry_timeout must be >= 0")
        self._url = urlsplit(url)
        self.url = redact_url(url)
        self.scheme = self._url.scheme.lower()
        self.backend: Backend = get_backend(self.scheme)
        self.root = self.backend.root(self._url)
        self.min_poll_interval = min_poll_interval
        self.max_poll_interval = max_poll_interval
        self.retry_timeout = retry_timeout
        self._options = storage_options
        self._own_fs = fs is None
        self._fs = fs
        self._fs_lock = threading.Lock()
        self._outage = Outage(self.url)
        self._watchers: weakref.WeakSet[AdaptivePollWatcher] = weakref.WeakSet()
        self._kept: dict[str, bytes] = {}
        self._kept_lock = threading.Lock()
        self._server_copy = True
        self._closed = False

    def __repr__(self) -> str:
        return f"RemoteStore({self.url!r})"

    @property
    def capabilities(self) -> StoreCapabilities:
        """Polled, and every look at a file is a request."""
        return StoreCapabilities(events=False, cheap_exists=False)

    # -- plumbing --------------------------------------------------------------------

    @property
    def fs(self) -> FileSystem:
        """The fsspec filesystem, connected on first use (and again after a lost link)."""
        fs = self._fs
        if fs is not None:
            return fs
        with self._fs_lock:
            if self._fs is None:
                fs = self.backend.connect(self._url, self._options)
                self._check_container(fs)
                self._fs = fs
            return self._fs

    def _check_container(self, fs: FileSystem) -> None:
        """StoreError if the root's bucket does not exist: fedbox never creates one (a
        typo would otherwise make a bucket the others never see)."""
        missing = self.backend.missing_container(fs, self.root)
        if missing is None:
            return
        self._close_fs(fs)
        raise StoreError(
            f"bucket {missing!r} of {self.url} does not exist; fedbox does not create "
            f"buckets: create it with your provider's tools "
            f"(e.g. `aws s3 mb {self.scheme}://{missing}`), then try again"
        )

    def _drop_connection(self) -> None:
        if not (self._own_fs and self.backend.reconnect):
            return
        with self._fs_lock:
            fs, self._fs = self._fs, None
        if fs is not None:
            self._close_fs(fs)

    def _close_fs(self, fs: FileSystem) -> None:
        try:
            self.backend.close(fs)
        except Exception as exc:  # closing a dead link may fail; nothing to save
            logger.debug("closing %s: %s", self.url, exc)

    def _full(self, path: str) -> str:
        rel = _checked(path)
        if not rel:
            return self.root
        return f"{self.root}/{rel}" if self.root else rel

    def _rel(self, name: str) -> str:
        name = name.strip("/")
        root = self.root.strip("/")
        if root and name.startswith(root + "/"):
            return name[len(root) + 1 :]
        return "" if name == root else name

    def _run(self, what: str, path: str, fn: Callable[[], T], *, budget: float | None = None) -> T:
        """Run ``fn`` with retries, turning backend errors into fedbox's."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        try:
            return retrying(
                fn,
                budget=self.retry_timeout if budget is None else budget,
                outage=self._outage,
                on_transient=self._drop_connection,
            )
        except (StoreError, InvalidIdentity):  # already ours (a missing bucket, NotFound)
            raise
        except Exception as exc:
            kind = classify(exc)
            if kind is Failure.NOT_FOUND:
                raise NotFound(f"no such file in store: {path}", path) from exc
            if kind is Failure.CREDENTIALS:
                raise StoreError(
                    f"{self.url} refused access while trying to {what} {path!r}: {exc}. "
                    "Check the credentials in the storage options "
                    "(key/secret, password, SSH key, known_hosts); not retrying.",
                    path,
                ) from exc
            if kind is Failure.TRANSIENT:
                raise StoreError(
                    f"{self.url} unreachable for {self.retry_timeout:.0f} s while trying to "
                    f"{what} {path!r}: {type(exc).__name__}: {exc}",
                    path,
                ) from exc
            raise StoreError(
                f"cannot {what} {path!r} on {self.url}: {type(exc).__name__}: {exc}", path
            ) from exc

    def _poke_watchers(self) -> None:
        for watcher in list(self._watchers):
            watcher.poke()

    # -- writing ---------------------------------------------------------------------

    def _upload(self, full: str, data: bytes) -> None:
        """Upload, creating the parent folder if the backend says it is missing."""
        try:
            self.backend.upload(self.fs, full, data)
        except FileNotFoundError:
            self.backend.makedirs(self.fs, str(PurePosixPath(full).parent))
            self.backend.upload(self.fs, full, data)

    def _commit(self, path: str, data: bytes) -> None:
        """Make ``data`` appear at ``path`` whole, or not at all."""
        full = self._full(path)
        self._take(path)
        if self.backend.atomic_put:
            self._run("write", path, lambda: self._upload(full, data))
        else:
            target = PurePosixPath(full)
            tmp = str(target.with_name(temp_name(target.name)))

            def upload_and_rename() -> None:
                # Retried as a whole: a rename that succeeded before the link dropped
                # is simply done again from a fresh upload of the same bytes.
                self._upload(tmp, data)
                self.backend.rename(self.fs, tmp, full)

            try:
                self._run("write", path, upload_and_rename)
            except BaseException:
                self._discard(tmp)
                raise
        self._poke_watchers()

    def _discard(self, full: str) -> None:
        try:
            self.fs.rm_file(full)
        except Exception as exc:  # a dot-file left behind is invisible; not worth failing for
            logger.debug("could not remove temporary %s: %s", full, exc)

    def put(self, path: str, data: bytes | BinaryIO) -> None:
        if isinstance(data, bytes | bytearray | memoryview):
            self._commit(path, bytes(data))
            return
        with self.writer(path) as f:
            shutil.copyfileobj(data, f, 1 << 20)

    @contextmanager
    def writer(self, path: str) -> Iterator[BinaryIO]:
        """A local in-memory buffer, uploaded when the block exits cleanly.

        The whole message is held in memory once: a retry after an outage must be able
        to send it again, and uploads want their length up front.
        """
        _checked(path)
        buffer = io.BytesIO()
        yield buffer
        self._commit(path, buffer.getvalue())

    # -- reading ---------------------------------------------------------------------

    def read(self, path: str) -> bytes:
        full = self._full(path)
        kept = self._take(path)
        if kept is not None:
            return kept
        return self._run("read", path, lambda: self.backend.read(self.fs, full))

    def _keep(self, path: str, data: bytes) -> None:
        with self._kept_lock:
            self._kept.pop(path, None)
            self._kept[path] = data
            while len(self._kept) > _KEEP_FILES:
                del self._kept[next(iter(self._kept))]

    def _take(self, path: str) -> bytes | None:
        """What a lookup by name fetched for ``path`` (once: message files never change,
        but a deleted or moved one must not be read again)."""
        with self._kept_lock:
            return self._kept.pop(path, None)

    def _probe(self, path: str) -> bool:
        """Whether ``path`` exists, in one request; the bytes it brought are kept."""
        full = self._full(path)
        try:
            data = self.backend.probe(self.fs, full, _KEEP_LIMIT)
        except FileNotFoundError:
            return False
        if data is not None:
            self._keep(path, data)
        return True

    def open(self, path: str) -> io.BufferedIOBase:
        """The whole file, downloaded (with retries) into memory."""
        return io.BytesIO(self.read(path))

    def exists(self, path: str) -> bool:
        full = self._full(path)

        def is_file() -> bool:
            try:
                return self.backend.is_file(self.fs, full)
            except FileNotFoundError:
                return False

        return self._run("check", path, is_file)

    def _ls(self, full: str) -> builtins.list[dict[str, Any]]:
        try:
            return list(self.fs.ls(full, detail=True))
        except FileNotFoundError:
            return []

    def _walk(self, full: str) -> Iterator[dict[str, Any]]:
        """Every file under ``full`` (absent: nothing), skipping dot-folders where it can."""
        try:
            found = self.backend.find(self.fs, full)
        except FileNotFoundError:
            return
        if found is not None:
            yield from found
            return
        pending = [full]
        while pending:
            folder = pending.pop()
            for info in self._ls(folder):
                name = str(info.get("name", "")).rstrip("/")
                if PurePosixPath(name).name.startswith("."):
                    continue
                if info.get("type") == "directory":
                    pending.append(name)
                elif info.get("type") == "file":
                    yield info

    def _entries(self, prefix: str, keep: Callable[[str], bool]) -> builtins.list[Entry]:
        """Files under ``prefix`` whose store paths ``keep`` accepts."""
        entries = []
        for info in self._walk(self._full(prefix)):
            rel = self._rel(str(info["name"]))
            if keep(rel):
                entries.append(Entry(path=rel, size=int(info.get("size") or 0), mtime=_mtime(info)))
        return entries

    def list(self, prefix: str = "", suffix: str = "") -> builtins.list[Entry]:
        return self._run("list", prefix, lambda: self._entries(prefix, _visible(suffix)))

    def list_temps(self, prefix: str = "") -> builtins.list[Entry]:
        return self._run("list", prefix, lambda: self._entries(prefix, _is_temp))

    def _dirs(self, prefix: str) -> builtins.list[str]:
        names = []
        for info in self._ls(self._full(prefix)):
            name = PurePosixPath(str(info.get("name", "")).rstrip("/")).name
            if info.get("type") == "directory" and name and not name.startswith("."):
                names.append(name)
        return sorted(names)

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        return self._run("list", prefix, lambda: self._dirs(prefix))

    # -- changing --------------------------------------------------------------------

    def delete(self, path: str) -> None:
        full = self._full(path)
        self._take(path)
        attempts = 0

        def delete_once() -> None:
            nonlocal attempts
            attempts += 1
            try:
                if self.backend.strict_delete and not self.backend.is_file(self.fs, full):
                    raise FileNotFoundError(2, "no such file", full)
                self.fs.rm_file(full)
            except FileNotFoundError:
                if attempts == 1:
                    raise
                # An earlier attempt deleted it before the link dropped.

        self._run("delete", path, delete_once)

    def remove_folder(self, path: str) -> bool:
        full = self._full(path)
        try:
            return self._run(
                "remove folder", path, lambda: self.backend.remove_empty_folder(self.fs, full)
            )
        except StoreError:
            return False  # not empty, or already gone

    def move(self, src: str, dst: str) -> None:
        full_src, full_dst = self._full(src), self._full(dst)
        self._take(src)

        self._run("move", src, lambda: self._into_folder(self.backend.rename, full_src, full_dst))
        self._poke_watchers()

    def link(self, src: str, dst: str) -> None:
        """A server-side copy where the backend has one (S3, GCS, WebDAV, SFTP with a
        shell, memory), so shared bytes are uploaded once; otherwise the file is read
        back and uploaded again (logged once per store)."""
        full_src, full_dst = self._full(src), self._full(dst)
        if self._server_copy:
            try:
                self._run("copy", src, lambda: self._copy(full_src, full_dst))
            except NotFound:
                raise
            except StoreError as exc:
                if not self.exists(src):
                    raise NotFound(f"no such file in store: {src}", src) from exc
                self._server_copy = False
                logger.info("%s cannot copy on the server (%s); uploading copies", self.url, exc)
            else:
                self._poke_watchers()
                return
        self._commit(dst, self.read(src))

    def _into_folder(
        self, op: Callable[[FileSystem, str, str], None], full_src: str, full_dst: str
    ) -> None:
        """``op(fs, src, dst)`` (a rename or a copy), creating ``dst``'s folder when the
        first try fails for want of it; FileNotFoundError if ``src`` itself is missing."""
        try:
            op(self.fs, full_src, full_dst)
        except FileNotFoundError:
            if not self.backend.is_file(self.fs, full_src):
                raise
            self.backend.makedirs(self.fs, str(PurePosixPath(full_dst).parent))
            op(self.fs, full_src, full_dst)

    def _copy(self, full_src: str, full_dst: str) -> None:
        target = full_dst
        if not self.backend.atomic_put:
            dst = PurePosixPath(full_dst)
            target = str(dst.with_name(temp_name(dst.name)))
        self._into_folder(self.backend.copy, full_src, target)
        if target != full_dst:
            try:
                self.backend.rename(self.fs, target, full_dst)
            except BaseException:
                self._discard(target)
                raise

    # -- watching --------------------------------------------------------------------

    def _files(self, base: str, suffixes: tuple[str, ...]) -> builtins.list[str]:
        return [e.path for e in self._entries(base, _visible(*suffixes))]

    def _files_in(self, folder: str, suffixes: tuple[str, ...]) -> builtins.list[str]:
        """The files directly in ``folder`` (one listing, no descent)."""
        keep = _visible(*suffixes)
        infos = self._ls(self._full(folder))
        paths = (self._rel(str(i["name"])) for i in infos if i.get("type") == "file")
        return [path for path in paths if keep(path)]

    def _lister(
        self, prefix: str, suffixes: tuple[str, ...], match: Callable[[str], bool] | None
    ) -> Callable[[], set[str]]:
        """One poll's listing: all of ``prefix``, or each accepted folder (their names
        listed on every poll, beside them: :class:`FolderScan`); where a subtree costs a
        request per folder, only the folders that held messages (:class:`LeafScan`)."""
        if match is None:
            return lambda: set(self._files(prefix, suffixes))
        lead = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        scans: dict[str, LeafScan] = {}

        def files(folder: str) -> builtins.list[str]:
            if self.backend.lists_subtrees:
                return self._files(folder, suffixes)
            scan = scans.get(folder)
            if scan is None:
                scan = scans[folder] = LeafScan(
                    lambda: self._files(folder, suffixes),
                    lambda leaf: self._files_in(leaf, suffixes),
                    refresh=self.max_poll_interval,
                )
            return scan()

        return FolderScan(lambda: [f"{lead}{d}" for d in self._dirs(prefix) if match(d)], files)

    def watch(
        self,
        prefix: str = "",
        suffixes: tuple[str, ...] = (),
        *,
        folders: FolderFilter | None = None,
    ) -> AdaptivePollWatcher:
        """Poll for new files. A poll lists each folder under ``prefix`` that ``folders``
        accepts (all of ``prefix`` when None), and the folder names, so a new sender's
        folder is listed in the poll that finds it. Files the caller expects by name
        (:meth:`AdaptivePollWatcher.expect`) can be looked up directly instead.

        Neither is retried inside a poll: the watcher backs off instead, and the store
        logs the outage once.
        """
        match = folder_matcher(folders)
        _checked(prefix)
        scan = self._lister(prefix, suffixes, match)

        def lister() -> set[str]:
            return self._run("list", prefix, scan, budget=0)

        def prober(path: str) -> bool:
            return self._run("check", path, lambda: self._probe(path), budget=0)

        watcher = AdaptivePollWatcher(
            lister,
            min_interval=self.min_poll_interval,
            max_interval=self.max_poll_interval,
            name=f"fedbox-poll-{self.scheme}",
            prober=prober,
        )
        self._watchers.add(watcher)
        return watcher

    def local_path(self, path: str) -> Path | None:
        """Remote files have no OS path."""
        return None

    def close(self) -> None:
        """Release the connection (not a filesystem passed in as ``fs``). Idempotent.

        Watchers are closed by their owners, as with LocalStore.
        """
        if self._closed:
            return
        self._closed = True
        if self._own_fs and self._fs is not None:
            fs, self._fs = self._fs, None
            self._close_fs(fs)

    def __enter__(self) -> RemoteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
