"""A datasite answers a run's invitation before it has imported Flower (issue 20).

The aggregator starts a run by inviting each datasite (a ``join`` message) and waits for
their answers before the ServerApp's first round. A client process needs most of a second
to import Flower, and nothing in a join needs Flower: so the invitation says what it is
in its envelope headers (which sealing authenticates, as it does the body), and a
:class:`JoinDesk` answers it from those while Flower loads. Every other message of the
run waits at the desk until the ClientApp's side is ready, then goes to it.

Nothing here imports Flower: the client process imports this, connects, and answers the
join before it does.
"""

from __future__ import annotations

import logging
import threading

from fedbox.rpc import App, Handler, Request, Response
from fedbox.rpc.body import Body

__all__ = ["CONTROL_HEADER", "ENDPOINT", "JOIN", "JOINED", "JoinDesk"]

logger = logging.getLogger(__name__)

ENDPOINT = "messages"
"""The endpoint of Flower traffic (the message layout's)."""
CONTROL_HEADER = "fedbox-control"
"""Envelope header of fedbox's own control messages: what the message is."""
JOIN = "join"
JOINED = "joined"


class JoinDesk:
    """The handler of one run's ``messages`` endpoint, registered on ``app`` at once:
    it answers invitations itself and hands every other request to the handler given
    to :meth:`attach`, waiting for it until then. :meth:`close` releases the waiting
    requests (they are answered 500) when the handler never comes."""

    def __init__(self, app: App, endpoint: str = ENDPOINT) -> None:
        self._app = app
        self._handler: Handler | None = None
        self._ready = threading.Event()
        self.joins = 0
        """Invitations answered here."""
        app.on_request(endpoint, stream=True, rerun=True)(self._on_message)

    def attach(self, handler: Handler) -> None:
        """Requests other than invitations go to ``handler`` from now on."""
        self._handler = handler
        self._ready.set()

    def close(self) -> None:
        self._ready.set()

    def _on_message(self, request: Request) -> bytes | Body | Response | None:
        if request.headers.get(CONTROL_HEADER) == JOIN:
            logger.info("%s joined run %s", self._app.box.email, self._app.name)
            self.joins += 1
            return Response(body=b"", headers={CONTROL_HEADER: JOINED})
        self._ready.wait()
        if self._handler is None:
            raise RuntimeError("this datasite stopped before it could serve the message")
        return self._handler(request)
