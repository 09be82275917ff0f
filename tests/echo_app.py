"""The echo app most in-process tests serve: app ``t``, endpoint ``echo``."""

from __future__ import annotations

from fedbox.rpc import Box, Request


def serve_echo(box: Box, senders: list[str] | None = None) -> None:
    """Answer ``t``/``echo`` with the request's body, from ``box``'s threads; each
    request's sender, as the box saw it, is appended to ``senders``."""
    app = box.app("t")

    @app.on_request("echo")
    def echo(req: Request) -> bytes:
        if senders is not None:
            senders.append(req.sender)
        return req.body

    app.start()
