"""Who may use the UI: Jupyter's access model (issue 19).

A random token in the printed URL is traded for a cookie; every request then needs the
cookie, a Host header naming this machine (or the ``--host`` given) and, if it has an
Origin, one of those too. State-changing requests are POSTs that also carry a CSRF value
only our own pages know (:func:`require_csrf`). Cookie and CSRF value are HMACs of the
token, so nothing else is stored and a restart with a new token voids them.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode, urlsplit

from fastapi import HTTPException, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fedbox.ui.settings import UiSettings

__all__ = ["CSRF_FIELD", "CSRF_HEADER", "AccessGuard", "cookie_name", "csrf_value", "require_csrf"]

CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
"""On every answer: only our own scripts run (a job's output shown as text stays text),
and no other site may frame the pages to trick a click on "approve". The referrer policy is
same-origin, not no-referrer: under no-referrer a browser sends ``Origin: null`` with our
own form posts, which the Origin check would refuse."""
PUBLIC_PREFIX = "/static/"
"""The package's own assets: the same for everyone, served without the cookie."""


def _derive(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def csrf_value(token: str) -> str:
    """The value every POST must carry (form field ``_csrf`` or header X-CSRF-Token)."""
    return _derive(token, "csrf")


def session_value(token: str) -> str:
    return _derive(token, "session")


def cookie_name(port: int) -> str:
    """Per port: browsers share cookies across ports, and two UIs must not clobber."""
    return f"fedbox-ui-{port}"


def _host_name(value: str) -> str:
    """``host[:port]`` or ``[v6]:port`` to the bare host name, lowercased."""
    if value.startswith("["):
        return value[1:].split("]", 1)[0].lower()
    return value.rsplit(":", 1)[0].lower() if value.count(":") == 1 else value.lower()


class AccessGuard:
    """ASGI middleware in front of every route (a plain ASGI class, so server-sent event
    streams pass through untouched)."""

    def __init__(self, app: ASGIApp, settings: UiSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        response = self._check(Request(scope))
        if response is None:
            await self.app(scope, receive, send_guarded)
        else:
            await response(scope, receive, send_guarded)

    def _check(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if not self.settings.allows_host(_host_name(host)):
            return PlainTextResponse("403: this Host is not allowed", status_code=403)
        origin = request.headers.get("origin")
        if origin is not None and not _same_origin(origin, host):
            return PlainTextResponse("403: cross-origin request refused", status_code=403)
        if request.url.path.startswith(PUBLIC_PREFIX):
            return None
        token = request.query_params.get("token")
        if token is not None and request.method == "GET":
            if not hmac.compare_digest(token.encode(), self.settings.token.encode()):
                return _refused()
            return self._log_in(request)
        cookie = request.cookies.get(cookie_name(self.settings.port), "")
        if not hmac.compare_digest(cookie.encode(), session_value(self.settings.token).encode()):
            return _refused()
        return None

    def _log_in(self, request: Request) -> Response:
        """Trade the token for the cookie, and take the token out of the address bar (and
        out of history and Referer headers)."""
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        query = urlencode(rest)
        path = request.url.path + (f"?{query}" if query else "")
        response = RedirectResponse(path, status_code=303)
        response.set_cookie(
            cookie_name(self.settings.port),
            session_value(self.settings.token),
            httponly=True,
            samesite="strict",
        )
        return response


def _same_origin(origin: str, host: str) -> bool:
    """Whether a request's Origin is the UI itself (port included: another local server
    on another port is another origin, though browsers send it our cookie)."""
    parts = urlsplit(origin)
    return parts.scheme == "http" and parts.netloc.lower() == host.lower()


def _refused() -> Response:
    return PlainTextResponse(
        "403: open the UI with the link `fedbox ui` printed (it carries the token)",
        status_code=403,
    )


async def require_csrf(request: Request) -> None:
    """A dependency of every POST route: refuse unless it carries our CSRF value."""
    expected = csrf_value(request.app.state.ui.settings.token)
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(403, "missing or wrong CSRF value: reload the page and try again")
