"""The parts of one running hub, and the dependency that names the caller."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from fedbox.hub.access import AccessRules
from fedbox.hub.identity import (
    Caller,
    LoginCodes,
    RateLimiter,
    Sessions,
    TokenIssuer,
    Unauthorized,
)
from fedbox.hub.index import Change, FileIndex
from fedbox.hub.metrics import Metrics
from fedbox.hub.rule_news import RuleListings
from fedbox.hub.settings import HubSettings
from fedbox.hub.tail import ChangeTail
from fedbox.hub.uploads import Uploads

__all__ = ["ChangeBus", "Hub", "current_caller", "hub_of"]


class ChangeBus:
    """Wakes every open change feed when a write commits: one of this process's (commits
    run in worker threads) or, through :class:`~fedbox.hub.notify.ChangeWatcher`, any.
    ``stale`` runs first, at once, in the waking thread: the shared
    :class:`~fedbox.hub.tail.ChangeTail` then rereads the log before any feed looks."""

    def __init__(self, stale: Callable[[], None]) -> None:
        self._stale = stale
        self._waiters: set[asyncio.Event] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def register(self) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def unregister(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    def _wake_all(self) -> None:
        for event in self._waiters:
            event.set()

    def wake(self) -> None:
        """Make every feed look at the change log again (from any thread)."""
        self._stale()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake_all)

    def publish(self, _batch: list[Change]) -> None:
        self.wake()


@dataclass
class Hub:
    settings: HubSettings
    index: FileIndex
    access: AccessRules
    tokens: TokenIssuer
    sessions: Sessions
    codes: LoginCodes
    per_email: RateLimiter
    per_address: RateLimiter
    uploads: Uploads
    tail: ChangeTail
    bus: ChangeBus
    metrics: Metrics
    rule_listings: RuleListings


def hub_of(conn: HTTPConnection) -> Hub:
    hub: Hub = conn.app.state.hub
    return hub


def bearer_token(conn: HTTPConnection) -> str:
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("no access token (send 'Authorization: Bearer TOKEN'; log in first)")
    return token.strip()


def authenticate(hub: Hub, token: str) -> Caller:
    """The token's identity, if its signature, expiry and session all hold."""
    caller = hub.tokens.verify(token)
    if not hub.sessions.active(caller):
        raise Unauthorized("the session was revoked or has expired; log in again")
    return caller


async def current_caller(request: Request) -> Caller:
    """Who is calling: from the access token only, never from anything else sent.

    Checking the signature is quick and done here; the session is looked up in the
    database (off the event loop) only when no recent check vouches for it.
    """
    hub = hub_of(request)
    caller = hub.tokens.verify(bearer_token(request))
    if hub.sessions.cached_active(caller):
        return caller
    if not await run_in_threadpool(hub.sessions.active, caller):
        raise Unauthorized("the session was revoked or has expired; log in again")
    return caller
