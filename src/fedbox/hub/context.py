"""The parts of one running hub, and the dependency that names the caller."""

from __future__ import annotations

import asyncio
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
    """Wakes the open change feeds a write may concern when it commits: one of this
    process's (commits run in worker threads) or, through
    :class:`~fedbox.hub.notify.ChangeWatcher`, any.

    Waking every feed at every commit made a hub with a few hundred sockets spend its
    event loop on feeds that then found nothing to send. The bus reads what the log
    gained (the shared :class:`~fedbox.hub.tail.ChangeTail`, once) and wakes only the
    feeds of users who may read some of it (:meth:`AccessRules.readers`: the two parties
    of an outbox, everyone for a datasite path). A feed left asleep misses nothing: it
    reads from its own cursor when next woken, past changes it could not see anyway.
    """

    def __init__(self, tail: ChangeTail, access: AccessRules) -> None:
        self._tail = tail
        self._access = access
        self._feeds: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._routed: int | None = None
        """The newest change whose readers were woken; None: wake everyone next."""
        self._pending = False
        self._routing: asyncio.Task[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def register(self, user: str) -> asyncio.Event:
        event = asyncio.Event()
        self._feeds.setdefault(user, set()).add(event)
        return event

    def unregister(self, user: str, event: asyncio.Event) -> None:
        feeds = self._feeds.get(user, set())
        feeds.discard(event)
        if not feeds:
            self._feeds.pop(user, None)

    def wake(self) -> None:
        """The log may have grown: wake the feeds it concerns (from any thread)."""
        self._tail.invalidate()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._schedule)

    def publish(self, _batch: list[Change]) -> None:
        self.wake()

    def _schedule(self) -> None:
        self._pending = True
        if self._routing is None or self._routing.done():
            self._routing = asyncio.ensure_future(self._route())

    async def _route(self) -> None:
        while self._pending:
            self._pending = False
            try:
                await self._tail.refresh()
            except Exception:  # the database is away: every feed looks for itself
                self._routed = None
            rows = None if self._routed is None else self._tail.window(self._routed, 1 << 30)
            if rows is None:
                self._wake({user for user in self._feeds})
                self._routed = self._tail.head()
            elif rows:
                self._wake(self._readers(rows))
                self._routed = rows[-1].seq

    def _readers(self, rows: list[Change]) -> set[str]:
        users: set[str] = set()
        for change in rows:
            readers = self._access.readers(change)
            if readers is None:
                return set(self._feeds)
            users |= readers
        return users

    def _wake(self, users: set[str]) -> None:
        for user in users:
            for event in self._feeds.get(user, ()):
                event.set()


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
