"""The fedbox exception hierarchy.

::

    FedboxError
    ├── InvalidIdentity (also ValueError)          .value
    ├── InvalidPermissionFile (also ValueError)    .folder, .problem
    ├── StoreError                                 .path
    │   ├── NotFound (also FileNotFoundError)
    │   ├── MissingBackend (also ImportError)
    │   └── UnsafeFile (also CorruptMessage)
    ├── PermissionDenied (also PermissionError)    .path
    ├── CryptoError                                .path, .message_id
    │   ├── DecryptError
    │   │   └── UnauthenticatedResponse
    │   └── UntrustedKey                           .email, .pinned, .presented
    ├── MessageError                               .path, .message_id
    │   ├── CorruptMessage
    │   │   └── UnsafeFile (also StoreError)
    │   ├── MessageExpired
    │   └── NotAFlowerMessage (also protobuf's DecodeError)
    ├── RpcError                                   .message_id
    │   ├── RemoteError                            .status
    │   └── ResponseTimeout (also TimeoutError)
    ├── TooFewApprovals
    └── AppConfigError (also ValueError)

Misuse of the API (sending on a stopped app, registering a handler twice) raises
the builtin ``ValueError``/``RuntimeError`` instead: those are bugs in the caller,
not conditions to handle.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError as _ProtobufDecodeError

__all__ = [
    "AppConfigError",
    "CorruptMessage",
    "CryptoError",
    "DecryptError",
    "FedboxError",
    "InvalidIdentity",
    "InvalidPermissionFile",
    "MessageError",
    "MessageExpired",
    "MissingBackend",
    "NotAFlowerMessage",
    "NotFound",
    "PermissionDenied",
    "RemoteError",
    "ResponseTimeout",
    "RpcError",
    "StoreError",
    "TooFewApprovals",
    "UnauthenticatedResponse",
    "UnsafeFile",
    "UntrustedKey",
]

PERMISSION_FILE = "syft.pub.yaml"
"""The name of a permission file (``fedbox.datasite`` re-exports it); errors name it."""


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


class MissingBackend(StoreError, ImportError):
    """A URL names a backend whose library is not installed; the message says how to."""


class InvalidPermissionFile(FedboxError, ValueError):
    """A ``syft.pub.yaml`` is not valid YAML or does not follow the schema.

    Raised when permission files are parsed or loaded strictly; the message names the
    folder and the problem. Unlike ``InvalidIdentity``, nothing here is a path trick:
    the file is just wrong, and its author can fix it.
    """

    def __init__(self, folder: str, problem: str) -> None:
        super().__init__(f"{folder}/{PERMISSION_FILE}: {problem}")
        self.folder = folder
        self.problem = problem


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


class UntrustedKey(CryptoError):
    """A peer's signing key is not one we trust; nothing was sent or opened.

    Either it differs from the pinned one (``.pinned`` is then that fingerprint), or, on
    a box that requires pins (``require_pinned=True``), the peer was never pinned
    (``.pinned`` is None). Unlike a bad signature (plain CryptoError), the keys are well
    formed. ``.email`` is the peer; ``.pinned`` and ``.presented`` are fingerprints.
    """

    def __init__(self, email: str, pinned: str | None, presented: str) -> None:
        if pinned is None:
            message = (
                f"{email} is not pinned and unpinned peers are refused (require_pinned). "
                "Check their fingerprint with them out of band (published: "
                f"{presented}; `fedbox keys show {email} --root ROOT` shows it), then pin it: "
                f"fedbox keys trust {email} {presented}"
            )
        else:
            message = (
                f"the identity key of {email} changed: pinned {pinned}, now {presented}. "
                "This is expected only if they reset their keys; check the new fingerprint "
                f"with them out of band, then accept it with: "
                f"fedbox keys trust {email} {presented}"
            )
        super().__init__(message)
        self.email = email
        self.pinned = pinned
        self.presented = presented


class MessageError(_AboutMessage):
    """A message file on disk cannot be used as it is."""


class CorruptMessage(MessageError):
    """Bad magic, short file, unparsable header or digest mismatch: quarantined."""


class UnsafeFile(CorruptMessage, StoreError):
    """A store path that is not a regular file of its own: a FIFO, a device, a symbolic
    link (or a link among its folders), or a file with several hard links. Refused without
    reading a byte, and so, being a CorruptMessage, quarantined like one (issue 11).
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message, path)


class MessageExpired(MessageError):
    """The message's ``expires`` time has passed; it is answered 419, never run."""


class NotAFlowerMessage(MessageError, _ProtobufDecodeError):
    """A body that should hold a Flower ``Message`` does not: not protobuf, or protobuf
    that Flower cannot make a Message of. Also protobuf's ``DecodeError``, which
    ``fedbox.fl.decode_message`` raised before and code written for Flower catches."""


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


class TooFewApprovals(FedboxError):
    """An FL job cannot start: fewer of its owners approved (or can still approve) than
    it needs."""


class AppConfigError(FedboxError, ValueError):
    """A Flower app dir (its ``pyproject.toml``, run config or participants) cannot be used
    as it is; the message says what to change. Unlike the errors above it concerns no
    message or store: it is raised before anything runs."""
