"""Telling an outage from a refusal, and retrying only the former.

Each fsspec backend raises its own errors (botocore, aiohttp, httpx, asyncssh), often
wrapped in a builtin one. :func:`classify` walks the ``__cause__``/``__context__`` chain and
recognises them by class name and status code, so no optional library is imported here.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from enum import Enum
from typing import TypeVar

__all__ = ["Failure", "Outage", "classify", "retrying"]

logger = logging.getLogger("fedbox.store.remote")

T = TypeVar("T")

_FIRST_DELAY = 0.05
_MAX_DELAY = 2.0
_QUIET = 0.5


class Failure(Enum):
    """What a failed store operation means for the caller."""

    TRANSIENT = "transient"  # connection refused or lost, timeout, 5xx: try again later
    CREDENTIALS = "credentials"  # 401/403, bad key or password: retrying cannot help
    NOT_FOUND = "not found"  # the path is absent: an answer, not a failure
    FATAL = "fatal"  # anything else: report at once


_AUTH_NAMES = {
    "PermissionDenied",  # asyncssh: authentication failed
    "HostKeyNotVerifiable",  # asyncssh: server key not in known_hosts
    "NoCredentialsError",
    "PartialCredentialsError",
    "GDriveAuthError",
    "RefreshError",  # google-auth
}
_AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "InvalidClientTokenId",
    "AuthFailure",
}
_TRANSIENT_NAMES = {
    # botocore / aiohttp (s3fs, gcsfs)
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ProxyConnectionError",
    "HTTPClientError",
    "ResponseStreamingError",
    "IncompleteReadError",
    "ClientConnectionError",
    "ClientPayloadError",
    "ServerTimeoutError",
    # httpx (webdav4)
    "TransportError",
    "TimeoutException",
    # webdav4
    "BadGatewayError",
    "ResourceLocked",
    # asyncssh (sshfs)
    "ConnectionLost",
    "SFTPNoConnection",
    "SFTPConnectionLost",
    "ChannelOpenError",
    "DisconnectError",
    # http.client
    "IncompleteRead",
}
_TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"}
_TRANSIENT_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.EPIPE,
    errno.ENOTCONN,
    errno.ESHUTDOWN,
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> int | None:
    """An HTTP status carried by the exception, whichever library raised it."""
    for value in (
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
        getattr(exc, "status", None),
    ):
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    return None


def _aws_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _classify_one(exc: BaseException) -> Failure | None:
    if isinstance(exc, FileNotFoundError):
        return Failure.NOT_FOUND
    names = _names(exc)
    status = _status(exc)
    code = _aws_code(exc)
    if isinstance(exc, PermissionError) or names & _AUTH_NAMES or code in _AUTH_CODES:
        return Failure.CREDENTIALS
    if status in (401, 403):
        return Failure.CREDENTIALS
    if isinstance(exc, ConnectionError | TimeoutError) or names & _TRANSIENT_NAMES:
        return Failure.TRANSIENT
    if code in _TRANSIENT_CODES or (status is not None and (status >= 500 or status in (408, 429))):
        return Failure.TRANSIENT
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return Failure.TRANSIENT
    return None


def classify(exc: BaseException) -> Failure:
    """The first decisive meaning found along the exception chain, outermost first."""
    for link in _chain(exc):
        kind = _classify_one(link)
        if kind is not None:
            return kind
    return Failure.FATAL


class Outage:
    """Logs an unreachable or refusing store once when it starts and once when it ends.

    Shared by every operation and watcher of one store, so a minute of downtime is two
    log lines, not one per attempt or per poll. A transient failure that clears within
    ``quiet`` seconds (a server's one-off 500, a dropped keep-alive) stays at debug level.
    """

    def __init__(self, name: str, quiet: float = _QUIET) -> None:
        self.name = name
        self.quiet = quiet
        self._lock = threading.Lock()
        self._since: float | None = None
        self._logged: Failure | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, kind: Failure, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            if self._since is None:
                self._since = now
            brief = kind is Failure.TRANSIENT and now - self._since < self.quiet
            if self._logged is kind or brief:
                logger.debug("%s failing: %s", self.name, _describe(exc))
                return
            self._logged = kind
        if kind is Failure.CREDENTIALS:
            logger.error("%s refused our credentials: %s", self.name, _describe(exc))
        else:
            logger.warning("%s unreachable (%s); retrying with backoff", self.name, _describe(exc))

    def succeeded(self) -> None:
        if self._since is None:
            return
        with self._lock:
            since, logged = self._since, self._logged
            self._since = self._logged = None
        if since is not None and logged is not None:
            logger.info("%s reachable again after %.1f s", self.name, time.monotonic() - since)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


def retrying(
    fn: Callable[[], T],
    *,
    budget: float,
    outage: Outage,
    on_transient: Callable[[], None] = lambda: None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds, fails for a non-transient reason, or ``budget``
    seconds of transient failures have passed (then the last error is raised).

    ``on_transient`` runs after each transient failure (to drop a dead connection).
    Delays grow from 50 ms to 2 s, so a store that comes back is noticed within 2 s.
    """
    deadline = time.monotonic() + budget
    delay = _FIRST_DELAY
    while True:
        try:
            result = fn()
        except Exception as exc:
            kind = classify(exc)
            if kind is Failure.NOT_FOUND:
                outage.succeeded()
                raise
            if kind is Failure.FATAL:
                raise
            outage.failed(kind, exc)
            if kind is Failure.CREDENTIALS:
                raise
            on_transient()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_DELAY)
            continue
        outage.succeeded()
        return result
