"""An RPC app: named handlers on one side (``fedbox.rpc.serving``), ``send``/``broadcast``
on the other (``fedbox.rpc.calling``)."""

from __future__ import annotations

from fedbox.rpc.calling import Calling
from fedbox.rpc.serving import Handler, Serving

__all__ = ["App", "Handler"]


class App(Serving, Calling):
    """Handlers and calls of one app name for one identity. Get it from ``box.app(name)``.

    Every request gets exactly one response (see ``fedbox.rpc.serving`` and
    :meth:`on_request`'s ``rerun``), whatever stops the process in between.
    """

    def __repr__(self) -> str:
        return f"<App {self.name!r} of {self.box.email}>"
