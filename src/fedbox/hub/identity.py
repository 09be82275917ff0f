"""Who is calling: login codes, access tokens (PyJWT), refresh tokens, rate limits.

A login is a session row; its access tokens name it (``sid``), so revoking the session
ends both its refresh token and, on their next request, its access tokens. Refresh tokens
and codes are stored only as SHA-256 digests: a copy of the database logs nobody in.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import jwt
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from fedbox.errors import FedboxError
from fedbox.hub.notify import announce_revoked
from fedbox.hub.schema import WRITE, codes, keys, lock_key, login_hits, sessions
from fedbox.hub.settings import SmtpSettings

__all__ = [
    "Caller",
    "LoginCodes",
    "RateLimiter",
    "Sessions",
    "TokenIssuer",
    "Unauthorized",
    "load_secret",
    "mail_code",
]

_ALGORITHM = "HS256"


class Unauthorized(FedboxError):
    """No token, a bad one, an expired one, or one whose session was revoked (401)."""


@dataclass(frozen=True, slots=True)
class Caller:
    email: str
    session: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def load_secret(engine: Engine, legacy: Path) -> str:
    """The token-signing key, kept in the database so every hub process over it signs
    and checks alike; made on first use. A hub from before kept it in ``legacy``
    (``DATA/hub.key``): that key is adopted, so tokens already handed out stay valid."""
    with engine.connect() as conn:
        row = conn.execute(select(keys.c.value).where(keys.c.name == "signing")).first()
    if row is not None:
        return str(row.value)
    try:
        key = legacy.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(48)
    try:
        with engine.connect() as conn, conn.execution_options(**WRITE).begin():
            conn.execute(insert(keys).values(name="signing", value=key))
    except IntegrityError:  # another hub process made it first: use theirs
        with engine.connect() as conn:
            return str(
                conn.execute(select(keys.c.value).where(keys.c.name == "signing")).scalar_one()
            )
    return key


class TokenIssuer:
    """Short-lived signed access tokens: ``sub`` is the email, ``sid`` the session."""

    CACHED = 10_000
    """Tokens whose signature was checked, kept with their expiry: every request of a
    client carries the same token until it is refreshed, and checking its signature
    each time was a tenth of a busy hub's event loop."""

    def __init__(self, secret: str, ttl: float) -> None:
        self._secret = secret
        self.ttl = ttl
        self._checked: dict[str, tuple[Caller, float]] = {}

    def issue(self, caller: Caller) -> str:
        now = int(time.time())
        claims = {"sub": caller.email, "sid": caller.session, "iat": now, "exp": now + self.ttl}
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Caller:
        checked = self._checked.get(token)
        if checked is not None and time.time() < checked[1]:
            return checked[0]
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the access token expired; refresh it") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the access token is not valid: {exc}") from exc
        sub, sid = claims.get("sub"), claims.get("sid")
        if not isinstance(sub, str) or not isinstance(sid, str):
            raise Unauthorized("the access token lacks its subject or session")
        caller = Caller(sub, sid)
        if len(self._checked) >= self.CACHED:
            self._checked.clear()
        self._checked[token] = (caller, float(claims["exp"]))
        return caller


class Sessions:
    """Logins and their refresh tokens (``{session}.{secret}``, rotated on every use)."""

    def __init__(self, engine: Engine, ttl: float, recheck: float = 1.0) -> None:
        """``recheck``: seconds a session found live is trusted without asking the
        database again, the most a revocation whose notification was lost takes to land."""
        self._engine = engine
        self.ttl = ttl
        self.recheck = recheck
        self._live: dict[str, tuple[str, float]] = {}

    def create(self, email: str) -> tuple[Caller, str]:
        sid, secret = secrets.token_hex(16), secrets.token_urlsafe(32)
        now = time.time()
        with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
            conn.execute(
                insert(sessions).values(
                    id=sid, email=email, refresh_hash=_digest(secret), created=now,
                    expires=now + self.ttl, revoked=False,
                )
            )  # fmt: skip
        return Caller(email, sid), f"{sid}.{secret}"

    def refresh(self, token: str) -> tuple[Caller, str]:
        """Exchange a refresh token for a new one. Presenting a used one revokes the
        session: either its owner or a thief is replaying it, and we cannot tell which."""
        sid, _, secret = token.partition(".")
        new_secret = secrets.token_urlsafe(32)
        with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
            row = conn.execute(select(sessions).where(sessions.c.id == sid)).first()
            if row is None or row.revoked or row.expires < time.time():
                raise Unauthorized("the refresh token expired or was revoked; log in again")
            replayed = not hmac.compare_digest(row.refresh_hash, _digest(secret))
            values = {"revoked": True} if replayed else {"refresh_hash": _digest(new_secret)}
            conn.execute(update(sessions).where(sessions.c.id == sid).values(**values))
            if replayed:
                announce_revoked(conn, row.email)
        if replayed:
            self._live.pop(sid, None)  # raised after the commit, which must keep the revocation
            raise Unauthorized("the refresh token was already used; the session is revoked")
        return Caller(row.email, sid), f"{sid}.{new_secret}"

    def active(self, caller: Caller) -> bool:
        """Whether the session is live; a yes is trusted for ``recheck`` seconds, or
        until :meth:`forget` (a revocation by another process, notified) drops it."""
        if self.cached_active(caller):
            return True
        now = time.monotonic()
        with self._engine.connect() as conn:
            row = conn.execute(
                select(sessions.c.email, sessions.c.revoked, sessions.c.expires).where(
                    sessions.c.id == caller.session
                )
            ).first()
        live = (
            row is not None
            and row.email == caller.email
            and not row.revoked
            and row.expires >= time.time()
        )
        if live:
            if len(self._live) > 100_000:  # forget long-gone sessions now and then
                self._live.clear()
            self._live[caller.session] = (caller.email, now)
        else:
            self._live.pop(caller.session, None)
        return live

    def cached_active(self, caller: Caller) -> bool:
        """True if a recent database check said the session is live (no I/O)."""
        seen = self._live.get(caller.session)
        return (
            seen is not None
            and seen[0] == caller.email
            and time.monotonic() - seen[1] < self.recheck
        )

    def revoke(self, email: str) -> int:
        """Revoke every session of ``email``; how many were active."""
        with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
            result = conn.execute(
                update(sessions)
                .where(sessions.c.email == email, sessions.c.revoked.is_(False))
                .values(revoked=True)
            )
            announce_revoked(conn, email)
        self.forget(email)
        return int(result.rowcount)

    def forget(self, email: str | None) -> None:
        """Ask the database again about ``email``'s sessions (None: everyone's) at their
        next use: they may have been revoked."""
        if email is None:
            self._live.clear()
            return
        for sid, (owner, _) in list(self._live.items()):
            if owner == email:
                self._live.pop(sid, None)


class LoginCodes:
    """One pending six-digit code per email, good for a few tries within its lifetime."""

    def __init__(self, engine: Engine, ttl: float, attempts: int) -> None:
        self._engine = engine
        self.ttl = ttl
        self.attempts = attempts

    def issue(self, email: str) -> str:
        code = f"{secrets.randbelow(10**6):06d}"
        with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
            conn.execute(delete(codes).where(codes.c.email == email))
            conn.execute(
                insert(codes).values(
                    email=email, code_hash=_digest(code), expires=time.time() + self.ttl,
                    attempts=0,
                )
            )  # fmt: skip
        return code

    def redeem(self, email: str, code: str) -> bool:
        """True once for the right code; wrong tries count, and use the code up."""
        with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
            row = conn.execute(select(codes).where(codes.c.email == email)).first()
            if row is None or row.expires < time.time() or row.attempts >= self.attempts:
                return False
            if hmac.compare_digest(row.code_hash, _digest(code)):
                conn.execute(delete(codes).where(codes.c.email == email))
                return True
            conn.execute(
                update(codes).where(codes.c.email == email).values(attempts=row.attempts + 1)
            )
            return False


class RateLimiter:
    """At most ``limit`` hits per key in any ``window`` seconds (sliding), counted in the
    database so that a client spreading requests over hub processes gains nothing."""

    PRUNE_EVERY = 100
    """Hits between sweeps of every key's expired hits (a key's own go at each of its hits)."""

    def __init__(self, engine: Engine, scope: str, limit: int, window: float) -> None:
        self._engine = engine
        self.scope = scope
        self.limit = limit
        self.window = window
        self._count = itertools.count()

    def hit(self, key: str) -> float | None:
        """Count a hit; None if allowed, else the seconds until one would be."""
        key = f"{self.scope}:{key}"
        now = time.time()
        expired = now - self.window
        with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
            lock_key(conn, key)
            if next(self._count) % self.PRUNE_EVERY == 0:
                conn.execute(delete(login_hits).where(login_hits.c.at <= expired))
            else:
                conn.execute(
                    delete(login_hits).where(login_hits.c.key == key, login_hits.c.at <= expired)
                )
            recent = (
                conn.execute(
                    select(login_hits.c.at)
                    .where(login_hits.c.key == key)
                    .order_by(login_hits.c.at)
                    .limit(self.limit)
                )
                .scalars()
                .all()
            )
            if len(recent) >= self.limit:
                return float(recent[0]) + self.window - now
            conn.execute(insert(login_hits).values(key=key, at=now))
        return None


def mail_code(smtp: SmtpSettings, email: str, code: str) -> None:
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = email
    message["Subject"] = f"fedbox hub login code {code}"
    message.set_content(f"Your fedbox hub login code is {code}.\n")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as client:
        if smtp.starttls:
            client.starttls()
        if smtp.username:
            client.login(smtp.username, smtp.password or "")
        client.send_message(message)
