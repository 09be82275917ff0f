"""An RPC app: named handlers on one side (``fedbox.rpc.serving``), ``send``/``broadcast``
on the other (``fedbox.rpc.calling``)."""

from __future__ import annotations

from fedbox.rpc.calling import Calling
from fedbox.rpc.serving import Handler, Serving

__all__ = ["App", "Handler"]


class App(Serving, Calling):
    """Handlers and calls of one app name for one identity. Get it from ``box.app(name)``.

    Handling is exactly-once per request id: a request is claimed in the audit log before
    its handler runs, and requests that already have a response are skipped, so a backlog
    replayed after a restart or a file reported twice by the watcher never runs twice.
    """

    def __repr__(self) -> str:
        return f"<App {self.name!r} of {self.box.email}>"
