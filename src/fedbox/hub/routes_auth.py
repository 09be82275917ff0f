"""``/api/v1/auth``: email one-time codes, tokens, refresh.

``POST /auth/code {email}`` sends a code (a ``--dev`` hub returns it as ``code``);
``POST /auth/token {email, code}`` gives ``access_token`` + ``refresh_token``;
``POST /auth/refresh {refresh_token}`` rotates them. Code and token requests count
against per-email and per-address limits (429 with ``Retry-After`` beyond them).
"""

from __future__ import annotations

import math

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from fedbox.datasite.identity import validate_email
from fedbox.hub.context import Hub, hub_of
from fedbox.hub.identity import Caller, Unauthorized, mail_code

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class CodeRequest(BaseModel):
    email: str = Field(max_length=254)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return validate_email(value)


class TokenRequest(CodeRequest):
    code: str = Field(min_length=1, max_length=32)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class CodeSent(BaseModel):
    sent: bool
    code: str | None = None
    """Only from a ``--dev`` hub."""


class Tokens(BaseModel):
    email: str
    access_token: str
    refresh_token: str
    expires_in: float
    token_type: str = "bearer"


def _limit(hub: Hub, request: Request, email: str) -> None:
    """Count the login request against its address and email (database I/O: run off
    the event loop)."""
    address = request.client.host if request.client else "unknown"
    for wait in (hub.per_address.hit(address), hub.per_email.hit(email)):
        if wait is not None:
            raise HTTPException(
                429,
                "too many login attempts; try again later",
                headers={"Retry-After": str(math.ceil(wait))},
            )


def _tokens(hub: Hub, caller: Caller, refresh: str) -> Tokens:
    return Tokens(
        email=caller.email,
        access_token=hub.tokens.issue(caller),
        refresh_token=refresh,
        expires_in=hub.tokens.ttl,
    )


@router.post("/code")
async def send_code(body: CodeRequest, request: Request) -> CodeSent:
    hub = hub_of(request)
    await run_in_threadpool(_limit, hub, request, body.email)
    code = await run_in_threadpool(hub.codes.issue, body.email)
    if hub.settings.dev:
        return CodeSent(sent=False, code=code)
    if hub.settings.smtp is None:
        raise HTTPException(503, "this hub cannot send email (no SMTP settings, not --dev)")
    await run_in_threadpool(mail_code, hub.settings.smtp, body.email, code)
    return CodeSent(sent=True)


@router.post("/token")
async def exchange_code(body: TokenRequest, request: Request) -> Tokens:
    hub = hub_of(request)
    await run_in_threadpool(_limit, hub, request, body.email)
    if not await run_in_threadpool(hub.codes.redeem, body.email, body.code):
        raise Unauthorized("wrong or expired code; ask for a new one")
    caller, refresh = await run_in_threadpool(hub.sessions.create, body.email)
    return _tokens(hub, caller, refresh)


@router.post("/refresh")
async def refresh_tokens(body: RefreshRequest, request: Request) -> Tokens:
    hub = hub_of(request)
    caller, refresh = await run_in_threadpool(hub.sessions.refresh, body.refresh_token)
    return _tokens(hub, caller, refresh)
