"""The caller's side: httpx transports that send each HTTP request as one fedbox request.

An adapter and nothing more (httpx's ``HTTPTransport`` over httpcore is the model): the
httpx request becomes a request on endpoint ``http`` of app ``app`` for ``owner``
(``fedbox.bridge.wire`` says how), the response file becomes an httpx response whose
body is read from the file as the client reads it, and every fedbox failure becomes
the most specific httpx exception, chained ``from`` the original:

=========================================  ==================================
what happened                              httpx raises
=========================================  ==================================
no answer within the read timeout,         ``ReadTimeout``
the request expired unhandled (419)
the owner's keys are missing or untrusted  ``ConnectError``
writing the request failed (store down)    ``WriteError``
reading the response failed (store down)   ``ReadError``
the owner refused the request (its box     ``RemoteProtocolError``
refused it: 400, 403, 404, 500), or the
response is damaged, or the application
failed after its response had begun
=========================================  ==================================

A refusal raises rather than becoming an HTTP response: a 502 made up here could not be
told from the application's own. What the *application* answers (a 404 of its own, the
bridge's allowlist 403 and rate-limit 429) is an ordinary response.

Timeouts: the read timeout bounds the whole round trip (the response file appears once
the owner has written it whole) and is the request's expiry (``expires_in``), so an
owner that starts late does not run a request nobody waits for. No timeout (``None``)
waits indefinitely; the request then expires after fedbox's ``DEFAULT_EXPIRY``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, cast

import anyio
import anyio.to_thread
import httpx

from fedbox.bridge.wire import ChunkStream, Head, WireError, read_frames, read_response_head
from fedbox.bridge.wire import request_prefix as _request_prefix
from fedbox.datasite.identity import validate_email
from fedbox.errors import CryptoError, MessageError, ResponseTimeout, StoreError
from fedbox.rpc.defaults import DEFAULT_EXPIRY
from fedbox.rpc.status import Status

if TYPE_CHECKING:
    from fedbox.rpc.box import Box

__all__ = ["ENDPOINT", "AsyncTransport", "Transport"]

logger = logging.getLogger(__name__)

ENDPOINT = "http"
"""The RPC endpoint every bridged HTTP request is sent to."""

_SMALL = 1 << 20
"""In-memory request bodies up to this size are sent as bytes, larger ones streamed."""

_ErrorMap = tuple[tuple[type[BaseException], type[httpx.TransportError]], ...]
_SENDING: _ErrorMap = (
    (CryptoError, httpx.ConnectError),
    (StoreError, httpx.WriteError),
    (OSError, httpx.WriteError),
)
_READING: _ErrorMap = (
    (ResponseTimeout, httpx.ReadTimeout),  # before OSError: it is a TimeoutError
    (WireError, httpx.RemoteProtocolError),
    (StoreError, httpx.ReadError),  # before MessageError: UnsafeFile is both
    (MessageError, httpx.RemoteProtocolError),
    (CryptoError, httpx.RemoteProtocolError),
    (OSError, httpx.ReadError),
)


@contextlib.contextmanager
def _mapped(errors: _ErrorMap, request: httpx.Request) -> Iterator[None]:
    """Raise fedbox's failures as the most specific httpx exception (httpcore's
    ``map_httpcore_exceptions`` habit), the original chained."""
    try:
        yield
    except Exception as exc:
        for kind, mapped in errors:
            if isinstance(exc, kind):
                raise mapped(str(exc), request=request) from exc
        raise


@dataclass(slots=True)
class _Answer:
    """A response as the transports hand it to httpx: the head, then the body's pieces
    (read from the response file as they are pulled), then ``close``."""

    head: Head
    pieces: Iterator[bytes]
    close: Callable[[], None]


class _Caller:
    """The one copy of the exchange, for both transports: send, wait, open the answer."""

    def __init__(self, box: Box, owner: str, app: str) -> None:
        self.owner = validate_email(owner)
        self.app = box.app(app)

    def __repr__(self) -> str:
        return f"<bridge to {self.owner}/{self.app.name}>"

    def call(self, request: httpx.Request, body: Iterable[bytes]) -> _Answer:
        timeout = request.extensions.get("timeout", {}).get("read")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        prefix = _request_prefix(request.method, request.url.raw_path.decode("ascii"), headers)
        content = _small_content(request)
        streamed = cast(io.BufferedIOBase, ChunkStream(_chained(prefix, body)))  # read as a file
        outgoing = prefix + content if content is not None else streamed
        with _mapped(_SENDING, request):
            future = self.app.send(
                self.owner,
                ENDPOINT,
                outgoing,
                expires_in=DEFAULT_EXPIRY if timeout is None else timeout,
            )
        logger.debug("%s %s %s sent as %s", self, request.method, request.url, future.id)
        with _mapped(_READING, request):
            response = future.wait(timeout, stream=True)
        if response.status == Status.EXPIRED:
            raise httpx.ReadTimeout(
                f"{self.owner} did not handle the request before it expired: {response.text}",
                request=request,
            )
        if response.status != Status.OK:
            raise httpx.RemoteProtocolError(
                f"{self.owner} refused the request (fedbox status {response.status}): "
                f"{response.text[:500]}",
                request=request,
            )
        if response.payload is None:
            raise httpx.RemoteProtocolError(
                f"{self.owner} answered with an empty body, not an HTTP response", request=request
            )
        payload = response.payload
        stream = payload.stream()
        try:
            with _mapped(_READING, request):
                head = read_response_head(stream)
        except BaseException:
            payload.close()
            raise
        return _Answer(head, _pieces(stream, request), payload.close)


def _small_content(request: httpx.Request) -> bytes | None:
    """The body of a request whose body is in memory already and small (most are):
    written with the head in one piece, which is quicker than a stream."""
    if isinstance(request.stream, httpx.ByteStream):
        content = request.read()
        if len(content) <= _SMALL:
            return content
    return None


def _chained(prefix: bytes, body: Iterable[bytes]) -> Iterator[bytes]:
    yield prefix
    yield from body


def _pieces(stream: BinaryIO, request: httpx.Request) -> Iterator[bytes]:
    with _mapped(_READING, request):
        yield from read_frames(stream)


def _response(request: httpx.Request, answer: _Answer, stream: object) -> httpx.Response:
    return httpx.Response(
        answer.head.status,
        headers=answer.head.headers,
        stream=stream,  # type: ignore[arg-type]
        request=request,
    )


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, answer: _Answer) -> None:
        self._answer = answer

    def __iter__(self) -> Iterator[bytes]:
        return self._answer.pieces

    def close(self) -> None:
        self._answer.close()


class Transport(httpx.BaseTransport):
    """``httpx.Client(transport=Transport(box, "owner@x.org", "weather"), base_url=...)``:
    every request goes to ``owner``'s bridge for app ``app`` as a fedbox message, its
    body streamed into the message file, the response body streamed out of its file.

    The host in the URL is not used (any ``base_url`` will do); the owner and the app
    name the service. Errors are httpx's (see the module docstring for which).
    """

    def __init__(self, box: Box, owner: str, app: str) -> None:
        self._caller = _Caller(box, owner, app)

    def __repr__(self) -> str:
        return f"<Transport {self._caller.owner}/{self._caller.app.name}>"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, Iterable), "a sync client gives a sync body"
        answer = self._caller.call(request, request.stream)
        return _response(request, answer, _ResponseStream(answer))


class _AsyncResponseStream(httpx.AsyncByteStream):
    def __init__(self, answer: _Answer) -> None:
        self._answer = answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pieces = self._answer.pieces
        while (piece := await anyio.to_thread.run_sync(next, pieces, None)) is not None:
            yield piece

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._answer.close)


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return None


def _pulled(body: httpx.AsyncByteStream) -> Iterator[bytes]:
    """An async request body as a blocking iterator, for the worker thread that writes
    the request file: each chunk is fetched from the event loop when the writer wants it.
    """
    chunks = body.__aiter__()
    while (chunk := anyio.from_thread.run(_next_chunk, chunks)) is not None:
        yield chunk


class AsyncTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`Transport`, for ``httpx.AsyncClient``: the same exchange,
    run in a worker thread (watchfiles' ``awatch`` habit: no second copy of the logic).
    """

    def __init__(self, box: Box, owner: str, app: str) -> None:
        self._caller = _Caller(box, owner, app)

    def __repr__(self) -> str:
        return f"<AsyncTransport {self._caller.owner}/{self._caller.app.name}>"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream), "an async client's body"
        body = _pulled(request.stream)
        answer = await anyio.to_thread.run_sync(self._caller.call, request, body)
        return _response(request, answer, _AsyncResponseStream(answer))
