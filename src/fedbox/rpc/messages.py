"""What handlers receive and what callers get back."""

from __future__ import annotations

from dataclasses import dataclass, field

from fedbox.errors import RemoteError
from fedbox.rpc.status import Status

__all__ = ["Request", "Response"]


@dataclass(frozen=True, slots=True)
class Request:
    """A request as its handler sees it: verified, addressed to this identity, not expired."""

    id: str
    sender: str
    recipient: str
    app: str
    endpoint: str
    headers: dict[str, str]
    body: bytes
    created: float
    expires: float


@dataclass(frozen=True, slots=True)
class Response:
    """A reply. Handlers may build one to choose status and headers; callers receive one.

    Like httpx, a non-200 status is not an exception until :meth:`raise_for_status`.
    """

    body: bytes = b""
    status: int = Status.OK
    headers: dict[str, str] = field(default_factory=dict)
    id: str = ""
    sender: str = ""
    created: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def raise_for_status(self) -> Response:
        """Return self when OK, else raise RemoteError carrying the status and reason."""
        if not self.ok:
            raise RemoteError(
                f"{self.sender or 'peer'} answered {self.status}: {self.text[:500]}",
                status=self.status,
                message_id=self.id,
            )
        return self
