"""The owner's side: answer the ``http`` requests of one app with an ASGI application or
a local HTTP service, within an allowlist, a per-sender rate and a concurrency cap.

Order of checks, each before the application sees anything: the request is unexpired
(fedbox answers an expired one 419 and never runs it), well formed (else 400), its
method and path allowed (else HTTP 403), its sender within the rate (else HTTP 429 with
``Retry-After``), then it waits for one of ``max_concurrent`` slots until it expires
(then 419). The caller's identity reaches the application as ``x-fedbox-sender``, from
the envelope's sender (authenticated on an encrypting box, which is the default); any
header of that name the caller sent is dropped first.

Each request runs once, exactly as fedbox handlers do: a request whose bridge stopped
while it ran is answered 500 "interrupted" at the next start, not run again (HTTP gives
no way to know that a request is safe to repeat).
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote

from fedbox.bridge.policy import Allowlist, AllowRule, RateLimit, parse_rate
from fedbox.bridge.transport import ENDPOINT
from fedbox.bridge.upstream import AsgiUpstream, Exchange, ProxyUpstream, RequestBody, Upstream
from fedbox.bridge.wire import (
    ChunkStream,
    Head,
    Headers,
    WireError,
    read_request_head,
    response_frames,
)
from fedbox.rpc.messages import Request, Response
from fedbox.rpc.status import Status

if TYPE_CHECKING:
    from fedbox.rpc.box import Box

__all__ = ["DEFAULT_MAX_CONCURRENT", "SENDER_HEADER", "Bridge", "serve"]

logger = logging.getLogger(__name__)

SENDER_HEADER = "x-fedbox-sender"
DEFAULT_MAX_CONCURRENT = 8
SMALL_RESPONSE = 1 << 20
"""Response bodies up to this size that are complete when the application has answered
are written in one piece; others stream from the application into the message file."""


def _http(status: int, detail: str, extra: Headers | None = None) -> Response:
    """An HTTP response made by the bridge itself (403, 429, 502), JSON like FastAPI's."""
    body = json.dumps({"detail": detail}).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
    frames = response_frames(status, [*headers, *(extra or [])], [body])
    return Response(body=b"".join(frames))


class _Once:
    """A cleanup that runs at most once, whoever calls it first (the end of the body,
    or the garbage collector when fedbox dropped a response without writing it)."""

    def __init__(self, action: Callable[[], None]) -> None:
        self._action: Callable[[], None] | None = action
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            action, self._action = self._action, None
        if action is not None:
            action()


class Bridge:
    """An app of ``box`` whose ``http`` endpoint forwards to ``upstream``. Start it with
    :meth:`start` (or use :func:`serve`); it answers the backlog first. A context
    manager; :meth:`stop` is idempotent and also closes the upstream.
    """

    def __init__(
        self,
        box: Box,
        app_name: str,
        upstream: Upstream,
        *,
        allow: Iterable[str | AllowRule] | None = None,
        rate: str | RateLimit | None = None,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.box = box
        self.upstream = upstream
        self.allowlist = Allowlist(allow)
        self.rate = parse_rate(rate) if isinstance(rate, str) else rate
        self.max_concurrent = max_concurrent
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self.app = box.app(app_name)
        self.app.on_request(ENDPOINT, stream=True)(self._handle)

    def __repr__(self) -> str:
        return f"<Bridge {self.box.email}/{self.app.name} -> {self.upstream!r}>"

    def start(self) -> None:
        self.app.start()
        if self.allowlist.rules is None:
            logger.warning("%s lets every method and path through (no allowlist)", self)

    def serve_forever(self) -> None:
        """Serve until Ctrl-C or :meth:`stop` from another thread; then stop."""
        try:
            self.app.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        self.app.stop()
        self.upstream.close()

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one request -----------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        assert request.payload is not None, "a bridge request always has a head"
        stream = request.payload.stream()
        try:
            head = read_request_head(stream)
        except WireError as exc:
            return Response(body=f"not an HTTP request: {exc}".encode(), status=Status.BAD_REQUEST)
        path = _path(head.target)
        if not self.allowlist.allows(head.method, path):
            logger.info("%s: %s %s refused for %s", self, head.method, path, request.sender)
            return _http(403, f"{head.method} {path} is not allowed through this bridge")
        if self.rate is not None:
            wait = self.rate.take(request.sender, self.box.clock())
            if wait:
                return _http(
                    429,
                    f"rate limit of {self.rate.count} per {self.rate.period:g} s reached",
                    [("retry-after", str(int(wait)))],
                )
        if not self._slots.acquire(timeout=max(0.0, request.expires - self.box.clock())):
            return _expired("while waiting for a free slot")
        try:
            return self._forward(request, head, stream)
        except BaseException:
            self._slots.release()
            raise

    def _forward(self, request: Request, head: Head, stream: BinaryIO) -> Response:
        """Run the request upstream (holding a slot, released when its response body has
        been written or dropped)."""
        left = request.expires - self.box.clock()
        if left <= 0:
            self._slots.release()
            return _expired("while waiting for a free slot")
        method, target = head.method, head.target
        headers = [(k, v) for k, v in head.headers if k.lower() != SENDER_HEADER]
        headers.append((SENDER_HEADER, request.sender))
        assert request.payload is not None
        body = RequestBody(stream, request.payload.size - head.length)
        try:
            exchange = self.upstream.open(method, target, headers, body, left)
        except TimeoutError as exc:
            self._slots.release()
            return _expired(str(exc))
        except ConnectionError as exc:
            self._slots.release()
            return _http(502, f"the service behind the bridge is unreachable: {exc}")
        try:
            body.detach()  # the message file closes when we return
        except BaseException:  # a damaged body: fedbox answers 400; _handle frees the slot
            exchange.close()
            body.close()
            raise
        done = _Once(lambda: self._finish(exchange, body))
        logger.debug("%s: %s %s -> %d (%s)", self, method, target, exchange.status, request.id)
        try:
            whole = exchange.whole(SMALL_RESPONSE)
        except BaseException:
            done()
            raise
        if whole is not None:
            done()
            return Response(
                body=b"".join(response_frames(exchange.status, exchange.headers, [whole]))
            )
        frames = response_frames(exchange.status, exchange.headers, _until(exchange, done))
        chunks = ChunkStream(frames)
        weakref.finalize(chunks, done)
        return Response(body=chunks)  # type: ignore[arg-type]  # a stream: written as read

    def _finish(self, exchange: Exchange, body: RequestBody) -> None:
        exchange.close()
        body.close()
        self._slots.release()


def _until(exchange: Exchange, done: Callable[[], None]) -> Iterator[bytes]:
    try:
        yield from exchange.chunks()
    finally:
        done()


def _expired(why: str) -> Response:
    return Response(body=f"request expired ({why})".encode(), status=Status.EXPIRED)


def _path(target: str) -> str:
    return unquote(target.partition("?")[0])


def serve(
    box: Box,
    app_name: str,
    *,
    asgi_app: Callable[..., Any] | None = None,
    proxy_url: str | None = None,
    allow: Iterable[str | AllowRule] | None = None,
    rate: str | RateLimit | None = None,
    max_concurrent: int = DEFAULT_MAX_CONCURRENT,
) -> Bridge:
    """Start answering ``app_name``'s HTTP requests with ``asgi_app`` (run in-process)
    or the service at ``proxy_url`` (``http://127.0.0.1:PORT``); return the running
    :class:`Bridge` (stop it, or use it as a context manager).

    ``allow``: rules like ``"GET /api/*"`` (None: everything). ``rate``: ``"60/min"``
    per sender. ``max_concurrent``: requests in the application at once.
    """
    if (asgi_app is None) == (proxy_url is None):
        raise ValueError("give exactly one of asgi_app= and proxy_url=")
    upstream: Upstream = (
        AsgiUpstream(asgi_app) if asgi_app is not None else ProxyUpstream(str(proxy_url))
    )
    try:
        bridge = Bridge(
            box, app_name, upstream, allow=allow, rate=rate, max_concurrent=max_concurrent
        )
        bridge.start()
    except BaseException:
        upstream.close()
        raise
    return bridge
