"""fedbox: federated learning and RPC over files.

Layers, bottom-up; a layer imports only from the layers below it:

1. ``fedbox.datasite``  identities, the message layout, workspace, permissions
2. ``fedbox.store``     where files live and how their arrival is noticed
3. ``fedbox.crypto``    keys, agreement, authenticated encryption
4. ``fedbox.rpc``       envelopes, sending, futures, handlers, audit
8. ``fedbox.fl``        Flower over files
9. ``fedbox.cli``       the ``fedbox`` command; the only place that wires layers for a user
9. ``fedbox.ui``        ``fedbox ui``, the local web dashboard (beside cli: they use each other)

This module re-exports the everyday API (``FileGrid`` lazily: it imports Flower).
"""

from fedbox.errors import (
    CorruptMessage,
    CryptoError,
    DecryptError,
    FedboxError,
    InvalidIdentity,
    MessageError,
    MessageExpired,
    NotFound,
    PermissionDenied,
    RemoteError,
    ResponseTimeout,
    RpcError,
    StoreError,
)
from fedbox.rpc import App, Box, Future, Request, Response, Status, connect

__all__ = [
    "App",
    "Box",
    "CorruptMessage",
    "CryptoError",
    "DecryptError",
    "FedboxError",
    "FileGrid",
    "Future",
    "InvalidIdentity",
    "MessageError",
    "MessageExpired",
    "NotFound",
    "PermissionDenied",
    "RemoteError",
    "Request",
    "Response",
    "ResponseTimeout",
    "RpcError",
    "Status",
    "StoreError",
    "connect",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``fedbox.FileGrid`` without importing Flower for users who only need RPC."""
    if name == "FileGrid":
        from fedbox.fl import FileGrid

        return FileGrid
    raise AttributeError(f"module 'fedbox' has no attribute {name!r}")
