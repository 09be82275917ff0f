"""The fedbox exception hierarchy.

::

    FedboxError
    ├── InvalidIdentity (also ValueError)          .value
    ├── StoreError                                 .path
    │   └── NotFound (also FileNotFoundError)
    ├── PermissionDenied (also PermissionError)    .path
    ├── CryptoError                                .path, .message_id
    │   └── DecryptError
    │       └── UnauthenticatedResponse
    ├── MessageError                               .path, .message_id
    │   ├── CorruptMessage
    │   └── MessageExpired
    └── RpcError                                   .message_id
        ├── RemoteError                            .status
        └── ResponseTimeout (also TimeoutError)

Misuse of the API (sending on a stopped app, registering a handler twice) raises
the builtin ``ValueError``/``RuntimeError`` instead: those are bugs in the caller,
not conditions to handle.
"""

from __future__ import annotations

__all__ = [
    "CorruptMessage",
    "CryptoError",
    "DecryptError",
    "FedboxError",
    "InvalidIdentity",
    "MessageError",
    "MessageExpired",
    "NotFound",
    "PermissionDenied",
    "RemoteError",
    "ResponseTimeout",
    "RpcError",
    "StoreError",
    "UnauthenticatedResponse",
]


class FedboxError(Exception):
    """Root of every operational error fedbox raises."""


class InvalidIdentity(FedboxError, ValueError):
    """A string that should be an email (or a message id) could become a path trick."""

    def __init__(self, message: str, value: object = None) -> None:
        super().__init__(message)
        self.value = value


class StoreError(FedboxError):
    """The store could not do what was asked; the cause is in ``__cause__``."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class NotFound(StoreError, FileNotFoundError):
    """The path does not exist in the store (unlike StoreError: nothing is broken)."""


class PermissionDenied(FedboxError, PermissionError):
    """A permission rule refuses the access; the store itself is fine."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class _AboutMessage(FedboxError):
    """Errors that concern one message file: where it is and which id it carries."""

    def __init__(
        self, message: str, path: str | None = None, message_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.message_id = message_id


class CryptoError(_AboutMessage):
    """Keys are missing, untrusted or malformed: nothing was decrypted or sent."""


class DecryptError(CryptoError):
    """A ciphertext failed authentication: tampered, truncated, or not for us."""


class UnauthenticatedResponse(DecryptError):
    """An encrypting box found a response it cannot authenticate (plaintext, not signed by
    the recipient): it is set aside, never taken as the answer; the request stays pending."""


class MessageError(_AboutMessage):
    """A message file on disk cannot be used as it is."""


class CorruptMessage(MessageError):
    """Bad magic, short file, unparsable header or digest mismatch: quarantined."""


class MessageExpired(MessageError):
    """The message's ``expires`` time has passed; it is answered 419, never run."""


class RpcError(FedboxError):
    """A call did not produce a successful response."""

    def __init__(self, message: str, message_id: str | None = None) -> None:
        super().__init__(message)
        self.message_id = message_id


class RemoteError(RpcError):
    """The peer answered with a non-200 status (unlike ResponseTimeout: it did answer)."""

    def __init__(self, message: str, status: int, message_id: str | None = None) -> None:
        super().__init__(message, message_id)
        self.status = status


class ResponseTimeout(RpcError, TimeoutError):
    """No response arrived within the wait; the request stays pending and can be re-waited."""
