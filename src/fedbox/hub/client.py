"""``hub://HOST:PORT[/FOLDER]`` stores: the Store protocol over a hub's HTTP API.

Writes go up in one request and appear whole (the hub commits them atomically), so there
are no temporaries to clean. Watching follows the hub's pushed change feed over a
websocket from a cursor: nothing polls, and after a disconnect the watcher reconnects with
its cursor and misses nothing. A ``/FOLDER`` after the host makes the store's root that
folder of the hub (``hub://h:8700/datasites/me@x.org``).

The identity is the participant's saved login (``fedbox login``): pass ``email=`` (and
``state_dir=``) as storage options, or leave them out when ``$FEDBOX_HOME`` holds exactly
one login for this hub. Expired access tokens are refreshed on the fly.

A hub that serves big files from its bucket (``--direct-downloads-above``) answers with a
redirect to a presigned URL; the bytes then come from the bucket, not the hub, and are
checked against the SHA-256 the hub sent with the redirect.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import io
import json
import logging
import os
import queue
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from fedbox.datasite.paths import split_store_path
from fedbox.errors import InvalidIdentity, NotFound, PermissionDenied, StoreError
from fedbox.hub.credentials import HubLogin, NotLoggedIn, base_urls, error_detail, find_login
from fedbox.store.base import (
    DEFAULT_RETRY_TIMEOUT,
    Entry,
    FolderFilter,
    StoreCapabilities,
    WatchMode,
)
from fedbox.store.polling import folder_matcher, in_folders

__all__ = ["HubDownload", "HubStore", "HubWatcher", "open_hub"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_SPOOL = 8 << 20
_INLINE = 64 << 10
"""Files up to this size reach a watcher with their change (the feed's ``inline``)."""
_PUSHED_FILES = 1024
_PUSHED_BYTES = 32 << 20
"""Bounds of what a store keeps of the bytes pushed to it, unread (oldest dropped)."""


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


class HubStore:
    """A Store whose files live on a fedbox hub (see the module docstring)."""

    capabilities = StoreCapabilities(events=True, cheap_exists=True)

    def __init__(
        self,
        url: str,
        *,
        email: str | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        retry_timeout: float | None = None,
        resumable_above: int = 64 << 20,
        part_size: int = 64 << 20,
        list_page: int = 1000,
    ) -> None:
        self.url = url
        self._list_page = list_page
        self._resumable_above = resumable_above
        self._part_size = part_size
        self._login: HubLogin = find_login(
            url, email, None if state_dir is None else Path(state_dir)
        )
        folder = urlsplit(url).path.strip("/")
        self._root = "/".join(split_store_path(folder, "hub folder", root_ok=True))
        self._retry_timeout = DEFAULT_RETRY_TIMEOUT if retry_timeout is None else retry_timeout
        self._endpoints = base_urls(url)  # the hub's processes, tried in turn
        # A hub that serves big files from its bucket answers with a redirect to it (the
        # token stays behind: httpx drops Authorization on a redirect to another host).
        self._http = httpx.Client(base_url=self._endpoints[0], timeout=60, follow_redirects=True)
        self._auth_lock = threading.Lock()
        self._unanswered = 0
        self._pushed: OrderedDict[str, bytes] = OrderedDict()  # full path -> bytes, unread
        self._pushed_bytes = 0
        self._pushed_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HubStore({self.url!r} as {self._login.email})"

    # --- plumbing ------------------------------------------------------------------------

    def _full(self, path: str, *, root_ok: bool = False) -> str:
        parts = split_store_path(path, "store path", root_ok=root_ok)
        return "/".join(p for p in (self._root, *parts) if p)

    def _relative(self, full: str) -> str | None:
        if not self._root:
            return full
        lead = self._root + "/"
        return full[len(lead) :] if full.startswith(lead) else None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._login.access_token}"}

    def _refresh(self, stale: str) -> None:
        with self._auth_lock:
            if self._login.access_token == stale:  # another thread may have refreshed
                self._login.refresh(self._http)

    def _fail_over(self, failed: httpx.URL) -> bool:
        """Move to the hub's next process after ``failed`` did not answer (a no-op if
        another thread moved already); True when every process was tried since the last
        answer, time to back off."""
        with self._auth_lock:
            if self._http.base_url == failed:
                at = self._endpoints.index(str(failed).rstrip("/"))
                self._http.base_url = self._endpoints[(at + 1) % len(self._endpoints)]
                self._unanswered += 1
                if len(self._endpoints) > 1:
                    logger.warning("hub %s unreachable; trying %s", failed, self._http.base_url)
            return self._unanswered % len(self._endpoints) == 0

    def _request(
        self,
        method: str,
        url: str,
        *,
        rewind: Callable[[], Any] | None = None,
        stream: bool = False,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """One request, refreshed once on 401 and retried through outages, on the hub's
        next process (a ``hub://`` root may list several) before backing off. With
        ``stream=True`` the body is left unread: the caller closes the response."""
        deadline = time.monotonic() + self._retry_timeout
        delay = 0.05
        refreshed = False
        while True:
            token = self._login.access_token
            base = self._http.base_url
            request = self._http.build_request(
                method, url, headers={**self._headers(), **(headers or {})}, **kw
            )
            try:
                answer = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if time.monotonic() + delay > deadline:
                    raise StoreError(f"{self.url} unreachable: {exc}") from exc
                if self._fail_over(base):
                    time.sleep(delay)  # backoff while the hub is down
                    delay = min(delay * 2, 2.0)
                if rewind is not None:
                    rewind()
                continue
            self._unanswered = 0
            if answer.status_code == 401 and not refreshed:
                answer.close()
                self._refresh(token)
                refreshed = True
                if rewind is not None:
                    rewind()
                continue
            return answer

    def _check(self, answer: httpx.Response, path: str) -> httpx.Response:
        if answer.is_success:
            return answer
        detail = error_detail(answer)
        status = answer.status_code
        if status == 404:
            raise NotFound(f"{path} not found on {self.url}", path)
        if status == 403:
            raise PermissionDenied(f"{path}: {detail}", path)
        if status == 400:
            raise InvalidIdentity(f"{path}: {detail}", path)
        if status == 401:
            raise NotLoggedIn(f"{self.url}: {detail}", path)
        raise StoreError(f"{path}: the hub answered {status}: {detail}", path)

    @staticmethod
    def _files_url(full: str) -> str:
        return "/api/v1/files/" + quote(full, safe="/@")

    # --- bytes pushed with the change feed -------------------------------------------------

    def pushed(self, full: str, data: bytes | None) -> None:
        """The watcher saw a new version of ``full``: keep its bytes (if the feed carried
        them) for the one read that follows, else forget any older ones. The feed comes
        in order, so what is kept is never older than what the watcher reported."""
        with self._pushed_lock:
            old = self._pushed.pop(full, None)
            self._pushed_bytes -= 0 if old is None else len(old)
            if data is None:
                return
            self._pushed[full] = data
            self._pushed_bytes += len(data)
            while len(self._pushed) > _PUSHED_FILES or self._pushed_bytes > _PUSHED_BYTES:
                _, dropped = self._pushed.popitem(last=False)
                self._pushed_bytes -= len(dropped)

    def _take_pushed(self, full: str) -> bytes | None:
        """The pushed bytes of ``full``, once: a second read asks the hub."""
        with self._pushed_lock:
            data = self._pushed.pop(full, None)
            self._pushed_bytes -= 0 if data is None else len(data)
            return data

    # --- Store ---------------------------------------------------------------------------

    def put(self, path: str, data: bytes | BinaryIO) -> None:
        """One request with a known length (the hub takes bodies up to 1 MiB in one
        step); files above ``resumable_above`` go up as a resumable upload."""
        full = self._full(path)
        self.pushed(full, None)
        if isinstance(data, (bytes, bytearray, memoryview)):
            answer = self._request("PUT", self._files_url(full), content=bytes(data))
            self._check(answer, path)
            return
        start = data.tell()
        size = data.seek(0, os.SEEK_END) - start
        data.seek(start)
        if size > self._resumable_above:
            self._put_resumable(full, path, data, start, size)
            return
        if size <= _SPOOL:
            self.put(path, data.read())
            return

        def chunks() -> Iterator[bytes]:
            while chunk := data.read(_CHUNK):
                yield chunk

        answer = self._request(
            "PUT",
            self._files_url(full),
            content=chunks(),
            headers={"Content-Length": str(size)},
            rewind=lambda: data.seek(start),
        )
        self._check(answer, path)

    def _put_resumable(self, full: str, path: str, data: BinaryIO, start: int, size: int) -> None:
        """Upload in parts that survive a cut connection or a killed process: the hub
        keeps what arrived, and asking again for the same (path, size) continues there."""
        answer = self._request("POST", "/api/v1/uploads", json={"path": full, "size": size})
        state = self._check(answer, path).json()
        upload, offset = state["id"], int(state["offset"])
        deadline = time.monotonic() + self._retry_timeout
        while offset < size:
            length = min(self._part_size, size - offset)
            data.seek(start + offset)

            def part(remaining: int = length) -> Iterator[bytes]:
                while remaining > 0 and (chunk := data.read(min(_CHUNK, remaining))):
                    remaining -= len(chunk)
                    yield chunk

            try:
                answer = self._http.patch(
                    f"/api/v1/uploads/{upload}",
                    content=part(),
                    headers={**self._headers(), "Upload-Offset": str(offset)},
                )
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise StoreError(f"{self.url} unreachable: {exc}") from exc
                answer = self._request("HEAD", f"/api/v1/uploads/{upload}")
                offset = int(self._check(answer, path).headers["upload-offset"])
                continue
            if answer.status_code == 401:
                self._refresh(self._login.access_token)
                continue
            if answer.status_code == 409:
                # Bytes of an earlier try, cut off on another hub process, landed first:
                # go on from where the hub says the upload ends.
                refused, sent_at = answer, offset
                answer = self._request("HEAD", f"/api/v1/uploads/{upload}")
                offset = int(self._check(answer, path).headers["upload-offset"])
                if offset == sent_at:
                    self._check(refused, path)  # refused for another reason: raises
                continue
            offset = int(self._check(answer, path).headers["upload-offset"])
            deadline = time.monotonic() + self._retry_timeout
        self._check(self._request("POST", f"/api/v1/uploads/{upload}/commit"), path)

    @contextmanager
    def writer(self, path: str) -> Iterator[BinaryIO]:
        self._full(path)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as spool:
            yield spool  # type: ignore[misc]
            spool.seek(0)
            self.put(path, spool)  # type: ignore[arg-type]

    def open(self, path: str) -> BinaryIO:
        """The file: read whole up to 8 MiB, else streamed from the hub as it is read
        (seeking asks for the rest with a ``Range``), never copied to a temporary first."""
        full = self._full(path)
        data = self._take_pushed(full)
        if data is not None:
            return io.BytesIO(data)
        answer = self._request("GET", self._files_url(full), stream=True)
        try:
            if not answer.is_success:
                answer.read()
                self._check(answer, path)
            size = int(answer.headers["content-length"])
            if size <= _SPOOL:
                return io.BytesIO(_checked(answer.read(), answer, path))
        except BaseException:
            answer.close()
            raise
        download = HubDownload(self, full, path, answer, size)
        return io.BufferedReader(download, _CHUNK)

    def reopen_at(self, full: str, path: str, offset: int, version: str) -> httpx.Response:
        """The rest of ``full`` from ``offset``, streamed; StoreError if its version is
        no longer ``version`` (it was replaced while being read)."""
        answer = self._request(
            "GET", self._files_url(full), stream=True, headers={"Range": f"bytes={offset}-"}
        )
        if not answer.is_success:
            answer.read()
            answer.close()
            self._check(answer, path)
        if _version_of(answer) != version:
            answer.close()
            raise StoreError(f"{path} changed on {self.url} while it was being read", path)
        return answer

    def read(self, path: str) -> bytes:
        full = self._full(path)
        data = self._take_pushed(full)
        if data is not None:
            return data
        answer = self._request("GET", self._files_url(full))
        return _checked(self._check(answer, path).content, answer, path)

    def exists(self, path: str) -> bool:
        full = self._full(path)
        with self._pushed_lock:
            if full in self._pushed:
                return True
        answer = self._request("HEAD", self._files_url(full))
        if answer.status_code == 404:
            return False
        self._check(answer, path)
        return True

    def _listing(self, prefix: str) -> builtins.list[tuple[str, int, float]]:
        """Every file below ``prefix``, page after page of the hub's listing."""
        full = self._full(prefix, root_ok=True)
        found = []
        params = {"prefix": full, "limit": str(self._list_page)}
        while True:
            answer = self._check(self._request("GET", "/api/v1/list", params=params), prefix)
            page = answer.json()
            for item in page["files"]:
                rel = self._relative(item["path"])
                if rel is not None and not _hidden(rel):
                    found.append((rel, int(item["size"]), float(item["mtime"])))
            if page.get("next") is None:
                return found
            params["after"] = page["next"]

    def list(self, prefix: str = "", suffix: str = "") -> builtins.list[Entry]:
        return [
            Entry(path, size, mtime)
            for path, size, mtime in self._listing(prefix)
            if path.endswith(suffix)
        ]

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        lead = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        dirs = {
            rest.split("/", 1)[0]
            for path, _, _ in self._listing(prefix)
            if "/" in (rest := path[len(lead) :])
        }
        return sorted(dirs)

    def list_temps(self, prefix: str = "") -> builtins.list[Entry]:
        """Always empty: the hub commits each upload whole, with no temporaries."""
        self._full(prefix, root_ok=True)
        return []

    def delete(self, path: str) -> None:
        full = self._full(path)
        self.pushed(full, None)
        self._check(self._request("DELETE", self._files_url(full)), path)

    def remove_folder(self, path: str) -> bool:
        """False: the hub has no folders of its own, only paths."""
        self._full(path)
        return False

    def _pair(self, endpoint: str, src: str, dst: str) -> None:
        body = {"src": self._full(src), "dst": self._full(dst)}
        self.pushed(body["dst"], None)
        if endpoint.endswith("move"):
            self.pushed(body["src"], None)
        self._check(self._request("POST", endpoint, json=body), src)

    def move(self, src: str, dst: str) -> None:
        self._pair("/api/v1/move", src, dst)

    def link(self, src: str, dst: str) -> None:
        """A server-side copy: the bytes do not travel again."""
        self._pair("/api/v1/copy", src, dst)

    def watch(
        self,
        prefix: str = "",
        suffixes: tuple[str, ...] = (),
        *,
        folders: FolderFilter | None = None,
    ) -> HubWatcher:
        self._full(prefix, root_ok=True)
        return HubWatcher(self, prefix.strip("/"), suffixes, folder_matcher(folders))

    def local_path(self, path: str) -> Path | None:
        return None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- for the watcher -----------------------------------------------------------------

    def head(self) -> int:
        answer = self._check(self._request("GET", "/healthz"), "/healthz")
        return int(answer.json()["head"])

    def feed_socket(self, after: int) -> Any:
        base = self._http.base_url
        ws_url = str(base).rstrip("/").replace("http", "ws", 1)
        try:
            # Uncompressed: batches are small and mostly ciphertext, so deflate costs
            # both ends CPU on every change for little saved.
            return connect(
                f"{ws_url}/api/v1/changes/ws?after={after}&inline={_INLINE}",
                additional_headers=self._headers(),
                open_timeout=30,
                compression=None,
            )
        except InvalidStatus as exc:
            raise StoreError(f"{self.url}: the change feed refused us: {exc}") from exc
        except (OSError, TimeoutError):
            self._fail_over(base)  # the watcher reconnects, to the next process
            raise

    def refresh_after_close(self, code: int | None) -> None:
        if code == 4401:
            self._refresh(self._login.access_token)


def _version_of(answer: httpx.Response) -> str:
    """The hub's version of a download, also when the hub sent it to its bucket: the
    redirect carries the version, the bucket's answer does not."""
    for step in (answer, *reversed(answer.history)):
        version = step.headers.get("x-fedbox-version")
        if version is not None:
            return str(version)
    return ""


def _bucket_sha256(answer: httpx.Response) -> str | None:
    """The SHA-256 the hub vouched for when it sent this download to its bucket (the
    redirect carries it); None for bytes the hub served itself."""
    if not answer.history:
        return None
    return answer.history[-1].headers.get("x-fedbox-sha256")


def _verify_digest(actual: str, expected: str | None, path: str) -> None:
    if expected is not None and actual != expected:
        raise StoreError(
            f"{path}: the bucket's bytes have SHA-256 {actual}, the hub said {expected}", path
        )


def _checked(data: bytes, answer: httpx.Response, path: str) -> bytes:
    """``data``, if it is what the hub said when it sent the download to its bucket."""
    _verify_digest(hashlib.sha256(data).hexdigest(), _bucket_sha256(answer), path)
    return data


class HubDownload(io.RawIOBase):
    """A file on the hub read as it streams in: the bytes go to the reader's buffers
    with no temporary copy. A seek only moves the position; the next read away from
    where the stream stands asks the hub for the rest from there (same version only)."""

    def __init__(
        self, store: HubStore, full: str, path: str, answer: httpx.Response, size: int
    ) -> None:
        self._store = store
        self._full = full
        self._path = path
        self._version = _version_of(answer)
        self._answer: httpx.Response | None = answer
        self._chunks: Iterator[bytes] = answer.iter_raw()
        self._pending = memoryview(b"")
        self._size = size
        self._pos = 0
        self._at = 0  # where the stream stands
        # Bytes from the bucket are hashed as they stream in order from the start; the
        # digest is checked when the last of them arrives.
        self._expected = _bucket_sha256(answer)
        self._digest = hashlib.sha256() if self._expected is not None else None
        self._hashed = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        if self._pos != self._at or self._answer is None:
            self._restart()
        if not self._pending:
            chunk = self._next_chunk()
            self._hash(chunk)
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self._pos += n
        self._at += n
        return n

    def _hash(self, chunk: bytes) -> None:
        """Add ``chunk`` (stream bytes from ``_at``) to the digest if it follows what was
        hashed (after a seek away it is not, until the reader comes back)."""
        if self._digest is None or self._at != self._hashed:
            return
        self._digest.update(chunk)
        self._hashed += len(chunk)
        if self._hashed == self._size:
            _verify_digest(self._digest.hexdigest(), self._expected, self._path)

    def _next_chunk(self) -> bytes:
        """The next bytes of the stream; a cut connection is asked again from here once."""
        for attempt in range(2):
            try:
                return next(self._chunks)
            except StopIteration:
                break
            except httpx.TransportError as exc:
                if attempt:
                    raise StoreError(f"{self._path}: download cut: {exc}", self._path) from exc
                self._restart()
        raise StoreError(
            f"{self._path}: the hub's stream ended at {self._at} of {self._size} bytes",
            self._path,
        )

    def _restart(self) -> None:
        self._drop()
        self._answer = self._store.reopen_at(self._full, self._path, self._pos, self._version)
        self._chunks = self._answer.iter_raw()
        self._at = self._pos

    def _drop(self) -> None:
        answer, self._answer = self._answer, None
        self._pending = memoryview(b"")
        if answer is not None:
            answer.close()

    def close(self) -> None:
        self._drop()
        super().close()


class HubWatcher:
    """New files under a prefix, from the hub's pushed change feed (no polling)."""

    def __init__(
        self,
        store: HubStore,
        prefix: str,
        suffixes: tuple[str, ...],
        match: Callable[[str], bool] | None,
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._suffixes = suffixes
        self._match = match
        self._cursor = store.head()
        self._arrived: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._socket: Any = None
        self._thread = threading.Thread(target=self._follow, name="hub-watch", daemon=True)
        self._thread.start()

    def _wanted(self, full: str) -> str | None:
        rel = self._store._relative(full)
        if rel is None or _hidden(rel):
            return None
        if self._suffixes and not rel.endswith(self._suffixes):
            return None
        return rel if in_folders(rel, self._prefix, self._match) else None

    def _follow(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            try:
                self._socket = self._store.feed_socket(self._cursor)
                with self._socket as socket:
                    delay = 0.05
                    for message in socket:
                        batch = json.loads(message)
                        for change in batch["changes"]:
                            self._take(change)
                        self._cursor = batch["cursor"]
                code = socket.close_code
            except (OSError, ConnectionClosed, StoreError, TimeoutError) as exc:
                logger.debug("hub feed dropped: %s", exc)
                code = getattr(getattr(exc, "rcvd", None), "code", None)
            if self._stop.is_set():
                return
            try:
                self._store.refresh_after_close(code)
            except StoreError as exc:
                logger.warning("hub watcher: %s", exc)
            self._stop.wait(delay)  # reconnect backoff while the hub is away
            delay = min(delay * 2, 2.0)

    def _take(self, change: dict[str, Any]) -> None:
        """Report a new file we want, its pushed bytes kept for the read that follows."""
        path, store = change["path"], self._store
        if change["op"] == "move":
            store.pushed(change["old_path"], None)
        rel = self._wanted(path)
        if rel is None:
            return
        data = change.get("data")
        store.pushed(path, None if data is None else base64.b64decode(data))
        if change["op"] in ("put", "move"):
            self._arrived.put(rel)

    def next_batch(self, timeout: float | None = None) -> set[str]:
        found: set[str] = set()
        try:
            first = self._arrived.get(timeout=timeout)
        except queue.Empty:
            return found
        while True:
            if first is None:
                return found
            found.add(first)
            try:
                first = self._arrived.get_nowait()
            except queue.Empty:
                return found

    def expect(self, paths: Iterable[str]) -> None:
        """A no-op: the store's ``exists`` is what callers use (cheap_exists)."""

    def forget(self, paths: Iterable[str]) -> None:
        """A no-op, as :meth:`expect`."""

    def list_when(self, needed: Callable[[], bool]) -> None:
        """A no-op: following the feed costs nothing per file."""

    def close(self) -> None:
        self._stop.set()
        socket = self._socket
        if socket is not None:
            socket.close()
        self._arrived.put(None)

    def __enter__(self) -> HubWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[set[str]]:
        while not self._stop.is_set():
            batch = self.next_batch()
            if batch:
                yield batch


def open_hub(
    root: str | os.PathLike[str],
    *,
    watch_mode: WatchMode = "auto",
    poll_interval: float | None = None,
    max_poll_interval: float | None = None,
    retry_timeout: float | None = None,
    fsync: bool = True,
    email: str | None = None,
    state_dir: str | None = None,
    resumable_above: int = 64 << 20,
    part_size: int = 64 << 20,
    list_page: int = 1000,
) -> HubStore:
    """The registry's factory for ``hub://`` and ``hubs://`` roots.

    ``watch_mode="poll"`` is refused: a hub pushes its changes. Polling intervals and
    ``fsync`` do not apply (the hub decides durability). Files above ``resumable_above``
    bytes go up as a resumable upload in parts of ``part_size``; listings come in pages
    of ``list_page`` files.
    """
    if watch_mode == "poll":
        raise ValueError("hub:// stores are watched through the hub's pushed feed, not polled")
    return HubStore(
        os.fspath(root),
        email=email,
        state_dir=state_dir,
        retry_timeout=retry_timeout,
        resumable_above=resumable_above,
        part_size=part_size,
        list_page=list_page,
    )
