"""Where the owner's bridge sends a request: an ASGI application run in-process, or an
HTTP service on the owner's machine. Both give back an :class:`Exchange`: the response's
status and headers once the application has sent them, then its body chunk by chunk.

Memory is bounded both ways: the request body is read from the message file as the
application asks for it, and the response body waits in a queue of ``_QUEUED`` chunks
that the response writer drains (an application that produces faster is made to wait).
``httpx.ASGITransport`` would not do: it collects the whole response body first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote

import httpx

from fedbox.bridge.wire import Headers

__all__ = ["AsgiUpstream", "Exchange", "ProxyUpstream", "RequestBody", "Upstream"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16
SMALL_BODY = 1 << 16
"""Request bodies up to this size are read into memory before the application runs."""
_QUEUED = 4
"""Response chunks an application may run ahead of the writer."""
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
"""Headers that describe one connection, not the message: not forwarded by the proxy."""


class RequestBody:
    """The request's HTTP body, read by the application as it wants it.

    The message file it comes from is closed once the handler returns (the response is
    then being written); an application that has not read all of it by then (one that
    echoes while it reads) gets the rest from a temporary file, spooled at that moment.
    """

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.in_memory = size <= SMALL_BODY
        """Read whole at once (a small body): the application's reads then never wait
        on a worker thread, and nothing is left to spool."""
        self._stream: BinaryIO = io.BytesIO(stream.read(size)) if self.in_memory else stream
        self._lock = threading.Lock()
        self._spool: tempfile.SpooledTemporaryFile[bytes] | None = None

    def read(self, n: int = _CHUNK) -> bytes:
        with self._lock:
            return self._stream.read(n)

    def detach(self) -> None:
        """Copy what is left of the body aside (disk beyond one chunk), so that the
        message file can be closed."""
        if self.in_memory:
            return
        with self._lock:
            spool: tempfile.SpooledTemporaryFile[bytes]
            spool = tempfile.SpooledTemporaryFile(_CHUNK)  # noqa: SIM115  # closed by close()
            shutil.copyfileobj(self._stream, spool, _CHUNK)
            spool.seek(0)
            self._stream, self._spool = spool, spool  # type: ignore[assignment]

    def close(self) -> None:
        with self._lock:
            if self._spool is not None:
                self._spool.close()


class Exchange:
    """One request on its way through the application: ``status`` and ``headers`` once
    it has answered, then its body, from ``whole()`` (when it is already all there and
    small) or ``chunks()``; ``close()`` when done (idempotent; ends the application's
    work if it is still running)."""

    status: int
    headers: Headers

    def whole(self, limit: int) -> bytes | None:
        """The whole body if it has arrived already and is at most ``limit`` bytes (it
        is then written in one piece, quicker than a stream); None otherwise, and
        ``chunks()`` gives it all."""
        raise NotImplementedError

    def chunks(self) -> Iterator[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Upstream(Protocol):
    """What the bridge forwards requests to."""

    def open(
        self, method: str, target: str, headers: Headers, body: RequestBody, timeout: float
    ) -> Exchange:
        """Send the request; return once the response's status and headers are known.
        TimeoutError if they are not within ``timeout`` seconds."""
        ...

    def close(self) -> None: ...


# -- ASGI -------------------------------------------------------------------------------


_END = object()


class _AsgiExchange(Exchange):
    """The application's response as it comes: ``started`` once the first part of the
    body is sent (so a one-piece body is already queued when the handler looks), then
    chunks in a thread-safe queue of ``_QUEUED`` (the handler's thread takes them
    without a trip through the event loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.started: concurrent.futures.Future[tuple[int, Headers]] = concurrent.futures.Future()
        self.head: tuple[int, Headers] | None = None
        self.queue: queue.Queue[object] = queue.Queue(_QUEUED)
        self._taken: list[object] = []
        self.finished = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.complete = False
        self.closed = False

    async def put(self, item: object) -> None:
        """Queue a chunk, _END or an exception; wait (off the loop) while the queue is full."""
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            await self._loop.run_in_executor(None, self.queue.put, item)
        self.begin()

    def begin(self) -> None:
        if self.head is not None and not self.started.done():
            self.started.set_result(self.head)

    def whole(self, limit: int) -> bytes | None:
        size = 0
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return None
            self._taken.append(item)
            if item is _END:
                return b"".join(self._taken[:-1])  # type: ignore[arg-type]
            if isinstance(item, BaseException):
                return None
            size += len(item)  # type: ignore[arg-type]
            if size > limit:
                return None

    def _items(self) -> Iterator[object]:
        taken, self._taken = self._taken, []
        yield from taken
        while True:
            yield self.queue.get()

    def chunks(self) -> Iterator[bytes]:
        for item in self._items():
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item

    def close(self) -> None:
        self.closed = True
        task = self.task
        if task is not None and not task.done():
            self._loop.call_soon_threadsafe(task.cancel)
        while True:  # free a put waiting for room: nobody will take
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break


class AsgiUpstream:
    """An ASGI 3 application run on an event loop of its own, in a thread; its
    ``lifespan`` started with it and ended by :meth:`close`."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fedbox-asgi")
        self._thread.daemon = True
        self._thread.start()
        self._lifespan = _Lifespan(app)
        self._call(self._lifespan.startup())

    def __repr__(self) -> str:
        return f"<AsgiUpstream {getattr(self.app, '__module__', '?')}:{type(self.app).__name__}>"

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def open(
        self, method: str, target: str, headers: Headers, body: RequestBody, timeout: float
    ) -> Exchange:
        path, _, query = target.partition("?")
        scope = {
            "type": "http",
            # 2.4: a disconnect is reported by send() raising, so an application does not
            # listen with receive() while it streams (which would take request body chunks)
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            "client": None,
            "server": None,
        }
        exchange = _AsgiExchange(self._loop)
        self._loop.call_soon_threadsafe(self._start, exchange, scope, body)
        try:
            exchange.status, exchange.headers = exchange.started.result(timeout)
        except concurrent.futures.TimeoutError:
            exchange.close()
            raise TimeoutError(f"the application did not answer within {timeout:.1f} s") from None
        return exchange

    def _start(self, exchange: _AsgiExchange, scope: dict[str, Any], body: RequestBody) -> None:
        exchange.task = self._loop.create_task(self._run(exchange, scope, body))

    async def _run(self, exchange: _AsgiExchange, scope: dict[str, Any], body: RequestBody) -> None:
        loop = asyncio.get_running_loop()
        body_done = False

        async def receive() -> dict[str, Any]:
            nonlocal body_done
            if body_done:
                await exchange.finished.wait()
                return {"type": "http.disconnect"}
            if body.in_memory:
                chunk = body.read(_CHUNK)
            else:
                chunk = await loop.run_in_executor(None, body.read, _CHUNK)
            body_done = not chunk
            return {"type": "http.request", "body": chunk, "more_body": not body_done}

        async def send(message: dict[str, Any]) -> None:
            if exchange.closed:
                raise OSError("the response is no longer wanted")  # ASGI 2.4: disconnected
            if message["type"] == "http.response.start":
                headers = [
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                    for k, v in message.get("headers", [])
                ]
                exchange.head = (int(message["status"]), headers)
            elif message["type"] == "http.response.body" and not exchange.complete:
                chunk = bytes(message.get("body", b""))
                if chunk:
                    await exchange.put(chunk)
                if not message.get("more_body", False):
                    exchange.complete = True
                    await exchange.put(_END)
                exchange.begin()

        try:
            await self.app(scope, receive, send)
            if exchange.head is None:
                raise RuntimeError("the application returned without sending a response")
            if not exchange.complete:
                raise RuntimeError("the application returned before its response body ended")
        except Exception as exc:
            await self._failed(exchange, exc)
        except asyncio.CancelledError:
            if not exchange.started.done():
                exchange.started.cancel()
            raise
        finally:
            exchange.finished.set()

    @staticmethod
    async def _failed(exchange: _AsgiExchange, exc: Exception) -> None:
        """An exception from the application: before it answered, a bare 500 (what
        ``httpx.ASGITransport(raise_app_exceptions=False)`` gives); after, the body is
        cut short and the caller told; after it ended, only logged."""
        logger.warning("the application raised %s: %s", type(exc).__name__, exc, exc_info=exc)
        if exchange.head is None:
            exchange.head = (500, [])
            exchange.complete = True
            await exchange.put(_END)
        elif not exchange.complete:
            exchange.complete = True
            await exchange.put(exc)

    def close(self) -> None:
        if not self._loop.is_running():
            return
        self._call(self._lifespan.shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class _Lifespan:
    """The ASGI lifespan protocol: startup before the first request, shutdown at close.
    An application that does not speak it (raises on the scope) is run without."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app
        self._inbox: asyncio.Queue[dict[str, Any]] | None = None
        self._outbox: asyncio.Queue[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self._inbox, self._outbox = asyncio.Queue(), asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._outbox.get()
        if reply["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the application failed to start: {reply.get('message', '')}")

    async def _main(self) -> None:
        assert self._inbox is not None and self._outbox is not None
        try:
            await self._app(
                {"type": "lifespan", "asgi": {"version": "3.0"}}, self._inbox.get, self._outbox.put
            )
        except Exception as exc:
            logger.debug("the application does not support lifespan: %s", exc)
            self._task = None
        await self._outbox.put({"type": "lifespan.unsupported"})

    async def shutdown(self) -> None:
        if self._task is None or self._inbox is None or self._outbox is None:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()


# -- proxy ------------------------------------------------------------------------------


class _ProxyExchange(Exchange):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in response.headers.raw
            if k.decode("latin-1").lower() not in _HOP_BY_HOP
        ]

    def whole(self, limit: int) -> bytes | None:
        length = self._response.headers.get("content-length", "")
        if not length.isdigit() or int(length) > limit:
            return None
        return b"".join(self._response.iter_raw())  # as sent: still encoded

    def chunks(self) -> Iterator[bytes]:
        yield from self._response.iter_raw(_CHUNK)

    def close(self) -> None:
        self._response.close()


class ProxyUpstream:
    """An HTTP service on the owner's machine (``http://127.0.0.1:PORT``), reached with
    httpx, bodies streamed both ways and passed through as they are (still encoded)."""

    def __init__(self, url: str) -> None:
        base = httpx.URL(url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"proxy URL must be http://host:port, got {url!r}")
        self.url = base
        self._client = httpx.Client(base_url=base, timeout=None, follow_redirects=False)

    def __repr__(self) -> str:
        return f"<ProxyUpstream {self.url}>"

    def open(
        self, method: str, target: str, headers: Headers, body: RequestBody, timeout: float
    ) -> Exchange:
        names = {k.lower() for k, _ in headers}
        has_body = "content-length" in names or "transfer-encoding" in names
        forwarded = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        request = self._client.build_request(
            method,
            self.url.copy_with(raw_path=target.encode("ascii")),
            headers=forwarded,
            content=iter(lambda: body.read(_CHUNK), b"") if has_body else None,
            timeout=httpx.Timeout(timeout),
        )
        # A kept-alive connection the service closes just as it is reused fails before any
        # answer (uvicorn drops idle ones after 5 s): a request without a body is sent
        # again, once, on a fresh connection; one with a body was read and cannot be.
        retries = 0 if has_body else 1
        while True:
            try:
                return _ProxyExchange(self._client.send(request, stream=True))
            except httpx.TimeoutException as exc:
                raise TimeoutError(f"{self.url} did not answer within {timeout:.1f} s") from exc
            except httpx.RemoteProtocolError as exc:
                if not retries:
                    raise ConnectionError(f"{self.url}: {exc}") from exc
                retries -= 1
            except httpx.TransportError as exc:
                raise ConnectionError(f"{self.url}: {exc}") from exc

    def close(self) -> None:
        self._client.close()
