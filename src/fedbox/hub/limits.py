"""Refuse requests whose headers are oversized (431) before any route sees them.

The server accepts large headers when they arrive in one piece; nothing the hub reads
needs more than a few kilobytes, and a token or path that long is an attack or a bug.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["MAX_HEADER_BYTES", "HeaderLimit"]

MAX_HEADER_BYTES = 16 << 10


class HeaderLimit:
    def __init__(self, app: Callable[..., Any], limit: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            size = sum(len(k) + len(v) for k, v in scope["headers"]) + len(scope["raw_path"] or b"")
            if size > self.limit:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1009})
                    return
                body = b'{"detail":"request headers larger than %d bytes"}' % self.limit
                await send(
                    {
                        "type": "http.response.start",
                        "status": 431,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
