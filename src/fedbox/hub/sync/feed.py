"""The hub's pushed change feed, followed from a cursor across disconnects.

Every batch is handed on with the cursor after it. When the socket drops (the hub
restarts, the network goes) the follower reconnects with the newest cursor it has, with
a backoff, so nothing is missed and nothing is asked for twice.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from fedbox.errors import FedboxError
from fedbox.hub.sync.remote import SyncRemote

__all__ = ["FeedFollower"]

logger = logging.getLogger(__name__)

Deliver = Callable[[list[dict[str, Any]], int], None]


class FeedFollower:
    def __init__(
        self,
        remote: SyncRemote,
        cursor: int,
        deliver: Deliver,
        on_state: Callable[[str | None], None],
    ) -> None:
        self._remote = remote
        self._cursor = cursor
        self._deliver = deliver
        self._on_state = on_state
        self._stop = threading.Event()
        self._socket: Any = None
        self._thread = threading.Thread(target=self._follow, name="sync-feed", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            code: int | None = None
            try:
                self._socket = self._remote.feed(self._cursor)
                with self._socket as socket:
                    if self._stop.is_set():
                        return
                    self._on_state(None)
                    delay = 0.05
                    for message in socket:
                        batch = json.loads(message)
                        self._cursor = int(batch["cursor"])
                        self._deliver(batch["changes"], self._cursor)
                code = socket.close_code
            except (OSError, ConnectionClosed, FedboxError, TimeoutError) as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                if not self._stop.is_set():
                    self._on_state(f"change feed: {exc}")
            if self._stop.is_set():
                return
            if code == 4401:
                try:
                    self._remote.refresh()
                except FedboxError as exc:
                    self._on_state(f"change feed: {exc}")
            elif code == 4400:
                self._on_state("the hub refused the --only selection")
            self._stop.wait(delay)
            delay = min(delay * 2, 2.0)

    def close(self) -> None:
        self._stop.set()
        socket = self._socket
        if socket is not None:
            socket.close()
        self._thread.join(timeout=10)
