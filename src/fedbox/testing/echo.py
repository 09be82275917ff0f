"""An ``echo`` endpoint that counts the requests it handled, by id.

Tests that prove each request is answered exactly once (across restarts, retries and
stores of every kind) compare these counts with the futures they sent.
"""

from __future__ import annotations

import threading
from collections import Counter

from fedbox.rpc import App, Request

__all__ = ["serve_counted_echo"]


def serve_counted_echo(app: App) -> Counter[str]:
    """Serve ``echo`` (the body reversed) on ``app`` and start it; the returned counter
    grows by one for the request's id each time a request is handled."""
    handled: Counter[str] = Counter()
    lock = threading.Lock()

    @app.on_request("echo")
    def echo(req: Request) -> bytes:
        with lock:
            handled[req.id] += 1
        return req.body[::-1]

    app.start()
    return handled
