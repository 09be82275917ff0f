"""What handlers receive and what callers get back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fedbox.errors import RemoteError
from fedbox.rpc.status import Status

if TYPE_CHECKING:
    from fedbox.rpc.body import Body
    from fedbox.rpc.payload import Payload

__all__ = ["Request", "Response"]


@dataclass(frozen=True, slots=True)
class Request:
    """A request as its handler sees it: verified, addressed to this identity, not expired.

    Handlers registered with ``stream=True`` get an empty ``body`` and read ``payload``
    instead (once; verified as it is read), so a large body is never copied whole.
    """

    id: str
    sender: str
    recipient: str
    app: str
    endpoint: str
    headers: dict[str, str]
    body: bytes
    created: float
    expires: float
    payload: Payload | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Response:
    """A reply. Handlers may build one to choose status and headers; callers receive one.

    Like httpx, a non-200 status is not an exception until :meth:`raise_for_status`.
    A handler may also return a :class:`~fedbox.rpc.body.Body` (200), written piece by piece.
    """

    body: bytes | Body = b""
    """Always bytes in a received response; a handler may set a :class:`Body`."""
    status: int = Status.OK
    headers: dict[str, str] = field(default_factory=dict)
    id: str = ""
    sender: str = ""
    created: float = 0.0
    payload: Payload | None = field(default=None, repr=False, compare=False)
    """Set instead of ``body`` by ``future.result(stream=True)`` for a 200 response."""

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @property
    def text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")

    def raise_for_status(self) -> Response:
        """Return self when OK, else raise RemoteError carrying the status and reason."""
        if not self.ok:
            raise RemoteError(
                f"{self.sender or 'peer'} answered {self.status}: {self.text[:500]}",
                status=self.status,
                message_id=self.id,
            )
        return self
