"""The hub as the sync daemon sees it: conditional uploads, hash-carrying downloads, the
change feed after a cursor, and one listing for a first sync.

Separate from :class:`fedbox.hub.client.HubStore` because the daemon needs what the
Store protocol hides: versions, ``If-Match``/``If-None-Match`` writes whose refusals
(412, 403) it acts on, and the feed's deletes and moves, not only new files.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

import httpx
from websockets.exceptions import InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from fedbox.errors import FedboxError, NotFound, PermissionDenied, StoreError
from fedbox.hub.credentials import HubLogin, error_detail, find_login
from fedbox.hub.sync.reconcile import LocalFile, RemoteFile

__all__ = ["INLINE_MAX", "HubAway", "Refused", "SmallUpload", "Stale", "SyncRemote"]

_CHUNK = 1 << 20
INLINE_MAX = 64 << 10
"""The feed carries the bytes of others' new files up to this size: no GET for them."""


class HubAway(StoreError):
    """The hub did not answer (down, restarting, network): the transfer waits and retries."""


class Stale(FedboxError):
    """A conditional write found another version on the hub than the one it was based on."""


class Refused(PermissionDenied):
    """The hub's rules forbid the write (403, or 404 for a path the caller may not read)."""


_LIST_PAGE = 10_000
"""The hub's largest listing page."""


def _remote(headers: httpx.Headers) -> RemoteFile:
    return RemoteFile(
        int(headers["x-fedbox-version"]),
        headers["x-fedbox-sha256"],
        int(headers.get("content-length", 0)),
    )


def _refusal(status: int, detail: str, path: str) -> FedboxError:
    """What the daemon makes of a refused write or read, whole request or batch item."""
    if status == 412:
        return Stale(f"{path}: {detail}")
    if status in (403, 404):
        return Refused(f"{path}: {detail}", path)
    if status >= 500 or status in (408, 429):
        return HubAway(f"{path}: the hub answered {status}: {detail}", path)
    return StoreError(f"{path}: the hub answered {status}: {detail}", path)


def _info(item: dict[str, Any]) -> RemoteFile:
    return RemoteFile(int(item["version"]), str(item["sha256"]), int(item["size"]))


@dataclass(frozen=True, slots=True)
class SmallUpload:
    """One file of :meth:`SyncRemote.upload_batch`: written only over version ``base``
    (None: only if absent)."""

    path: str
    data: bytes
    sha256: str
    base: int | None


class SyncRemote:
    """One identity's view of one hub (thread-safe: the daemon's workers share it)."""

    def __init__(
        self,
        hub: str,
        email: str,
        state_dir: Path | None = None,
        *,
        only: Sequence[str] = (),
        resumable_above: int = 64 << 20,
        part_size: int = 16 << 20,
    ) -> None:
        self.login: HubLogin = find_login(hub, email, state_dir)
        self.only = tuple(only)
        self._resumable_above = resumable_above
        self._part_size = part_size
        self._http = httpx.Client(
            base_url=self.login.url, timeout=httpx.Timeout(60, connect=5),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )  # fmt: skip
        self._auth = threading.Lock()

    # --- plumbing ------------------------------------------------------------------------

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.login.access_token}", **(extra or {})}

    def refresh(self, stale_token: str | None = None) -> None:
        """New tokens, unless another thread already got them since ``stale_token``."""
        with self._auth:
            if stale_token is None or self.login.access_token == stale_token:
                try:
                    self.login.refresh(self._http)
                except httpx.TransportError as exc:
                    raise HubAway(f"{self.login.url} unreachable: {exc}") from exc

    def _send(
        self, method: str, url: str, *, body: Callable[[], Any] | None = None, **kw: Any
    ) -> httpx.Response:
        """One request, with the token refreshed once on 401; HubAway if unreachable."""
        extra = kw.pop("headers", None)
        for attempt in range(2):
            token = self.login.access_token
            if body is not None:
                kw["content"] = body()
            try:
                answer = self._http.request(method, url, headers=self._headers(extra), **kw)
            except httpx.TransportError as exc:
                raise HubAway(f"{self.login.url} unreachable: {exc}") from exc
            if answer.status_code != 401 or attempt:
                return answer
            self.refresh(token)
        raise AssertionError("unreachable")

    @staticmethod
    def _check(answer: httpx.Response, path: str) -> httpx.Response:
        if answer.is_success:
            return answer
        raise _refusal(answer.status_code, error_detail(answer), path)

    @staticmethod
    def _files(path: str) -> str:
        return "/api/v1/files/" + quote(path, safe="/@")

    @staticmethod
    def _condition(base: int | None) -> dict[str, str]:
        return {"If-None-Match": "*"} if base is None else {"If-Match": str(base)}

    # --- reading -------------------------------------------------------------------------

    def head(self) -> int:
        """The newest change's sequence number: the cursor a first sync starts from."""
        return int(self._check(self._send("GET", "/healthz"), "/healthz").json()["head"])

    def changes(self, after: int) -> tuple[list[dict[str, Any]], int]:
        """One page of readable, selected changes after ``after``, and the next cursor."""
        params: list[tuple[str, str | int]] = [("after", after)]
        params += [("only", glob) for glob in self.only]
        batch = self._check(self._send("GET", "/api/v1/changes", params=params), "changes")
        data = batch.json()
        return data["changes"], int(data["cursor"])

    def listing(self) -> dict[str, RemoteFile]:
        """Every file the caller may read, page by page (a first sync, or a changed
        ignore file; otherwise the feed says)."""
        found: dict[str, RemoteFile] = {}
        after: str | None = ""
        while after is not None:
            params = {"prefix": "", "after": after, "limit": _LIST_PAGE}
            page = self._check(self._send("GET", "/api/v1/list", params=params), "list").json()
            found.update((item["path"], _info(item)) for item in page["files"])
            after = page["next"]
        return found

    def stat(self, path: str) -> RemoteFile | None:
        answer = self._send("HEAD", self._files(path))
        if answer.status_code == 404:
            return None
        return _remote(self._check(answer, path).headers)

    def download(self, path: str, sink: BinaryIO) -> RemoteFile:
        """The current version streamed into ``sink``; NotFound if it is gone."""
        for attempt in range(2):
            token = self.login.access_token
            try:
                with self._http.stream("GET", self._files(path), headers=self._headers()) as r:
                    if r.status_code == 401 and not attempt:
                        self.refresh(token)
                        continue
                    if r.status_code == 404:
                        raise NotFound(f"{path} is gone from the hub", path)
                    if not r.is_success:
                        r.read()
                        self._check(r, path)
                    for chunk in r.iter_bytes(_CHUNK):
                        sink.write(chunk)
                    return _remote(r.headers)
            except httpx.TransportError as exc:
                raise HubAway(f"{self.login.url} unreachable: {exc}") from exc
        raise AssertionError("unreachable")

    # --- writing -------------------------------------------------------------------------

    def upload(self, path: str, source: Path, local: LocalFile, base: int | None) -> RemoteFile:
        """Put ``source`` at ``path`` only over version ``base`` (None: only if absent).

        Stale if someone else wrote first, Refused if the rules forbid it; a file that
        changed while it was read is refused by the hub's hash check (StoreError).
        """
        headers = {**self._condition(base), "X-Content-SHA256": local.sha256}
        if local.size > self._resumable_above:
            return self._upload_resumable(path, source, local, headers)
        with open(source, "rb") as f:

            def body() -> Any:
                f.seek(0)
                if local.size <= _CHUNK:
                    return f.read()
                return iter(lambda: f.read(_CHUNK), b"")

            answer = self._send("PUT", self._files(path), body=body, headers=headers)
        return _info(self._check(answer, path).json())

    def upload_small(self, path: str, data: bytes, sha256: str, base: int | None) -> RemoteFile:
        """As :meth:`upload`, for bytes already read (and hashed) by the caller."""
        headers = {**self._condition(base), "X-Content-SHA256": sha256}
        answer = self._send("PUT", self._files(path), body=lambda: data, headers=headers)
        return _info(self._check(answer, path).json())

    def upload_batch(self, items: Sequence[SmallUpload]) -> list[RemoteFile | FedboxError]:
        """Several small files in one request (``POST /api/v1/batch``), each answered as
        :meth:`upload` would answer it alone: its new version, or the Stale, Refused or
        StoreError its own PUT would raise. HubAway if the request itself failed."""
        files = [
            {
                "path": item.path, "sha256": item.sha256,
                "data": base64.b64encode(item.data).decode(),
                "if_match": item.base, "if_absent": item.base is None,
            }
            for item in items
        ]  # fmt: skip
        answer = self._check(self._send("POST", "/api/v1/batch", json={"files": files}), "batch")
        results: list[RemoteFile | FedboxError] = []
        for item, result in zip(items, answer.json()["results"], strict=True):
            if result["status"] == 200:
                results.append(_info(result["file"]))
            else:
                results.append(_refusal(int(result["status"]), str(result["detail"]), item.path))
        return results

    def _upload_resumable(
        self, path: str, source: Path, local: LocalFile, headers: dict[str, str]
    ) -> RemoteFile:
        """In parts the hub keeps across cut connections and killed daemons: asking again
        for the same (path, size) continues from the bytes already there."""
        answer = self._send("POST", "/api/v1/uploads", json={"path": path, "size": local.size})
        state = self._check(answer, path).json()
        upload, offset = state["id"], int(state["offset"])
        with open(source, "rb") as f:
            while offset < local.size:
                length = min(self._part_size, local.size - offset)
                f.seek(offset)

                def part(remaining: int = length) -> Iterator[bytes]:
                    while remaining > 0 and (chunk := f.read(min(_CHUNK, remaining))):
                        remaining -= len(chunk)
                        yield chunk

                reply = self._send(
                    "PATCH", f"/api/v1/uploads/{upload}", body=part,
                    headers={"Upload-Offset": str(offset)},
                )  # fmt: skip
                if reply.status_code == 409:  # a part in flight at a kill landed meanwhile
                    reply = self._send("HEAD", f"/api/v1/uploads/{upload}")
                offset = int(self._check(reply, path).headers["upload-offset"])
        commit = self._send("POST", f"/api/v1/uploads/{upload}/commit", headers=headers)
        return _info(self._check(commit, path).json())

    def move(self, src: str, dst: str, base: int) -> RemoteFile:
        """Rename ``src`` (only at version ``base``) to ``dst`` (only where there is no
        file): Stale if either changed meanwhile, nothing moved."""
        answer = self._send(
            "POST", "/api/v1/move", json={"src": src, "dst": dst, "dst_if_absent": True},
            headers=self._condition(base),
        )  # fmt: skip
        return _info(self._check(answer, dst).json())

    def delete(self, path: str, base: int) -> None:
        """Delete ``path`` only if it is still at version ``base``; gone already is fine."""
        answer = self._send("DELETE", self._files(path), headers=self._condition(base))
        if answer.status_code != 404:  # 404: gone already (or never ours to see)
            self._check(answer, path)

    # --- the pushed feed -----------------------------------------------------------------

    def feed(self, after: int) -> ClientConnection:
        """A websocket pushing change batches after ``after`` (HubAway if unreachable)."""
        params: list[tuple[str, str | int]] = [("after", after), ("inline", INLINE_MAX)]
        params += [("only", glob) for glob in self.only]
        url = self.login.url.replace("http", "ws", 1) + "/api/v1/changes/ws?" + urlencode(params)
        try:
            # No size cap: a burst's batch carries up to a thousand files' bytes inline.
            # No per-message deflate: inline bytes are end-to-end encrypted, so deflating
            # them only undoes base64 (a quarter of their size) while it was a fifth of
            # the hub's CPU in a burst, and inflating more of the daemon's.
            return connect(
                url, additional_headers=self._headers(), open_timeout=10, max_size=None,
                compression=None,
            )  # fmt: skip
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise HubAway(f"{self.login.url} unreachable: {exc}") from exc

    def close(self) -> None:
        self._http.close()
