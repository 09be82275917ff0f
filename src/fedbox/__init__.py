"""fedbox: federated learning and RPC over files.

Layers, bottom-up; a layer imports only from the layers below it:

1. ``fedbox.datasite``  identities, the message layout, workspace, permissions
2. ``fedbox.store``     where files live and how their arrival is noticed
3. ``fedbox.crypto``    keys, agreement, authenticated encryption
4. ``fedbox.rpc``       envelopes, sending, futures, handlers, audit
8. ``fedbox.fl``        Flower over files
9. ``fedbox.cli``       the ``fedbox`` command; the only place that wires layers for a user
9. ``fedbox.ui``        ``fedbox ui``, the local web dashboard (beside cli: they use each other)

This module re-exports the everyday API. The errors are imported eagerly (they are
cheap); the RPC names and ``FileGrid`` on first use, so importing any fedbox module
(this package's ``__init__`` runs first) costs neither ``fedbox.rpc``'s dependencies
nor Flower's: ``fedbox --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from fedbox.fl import FileGrid
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


_LAZY = {
    "App": "fedbox.rpc",
    "Box": "fedbox.rpc",
    "Future": "fedbox.rpc",
    "Request": "fedbox.rpc",
    "Response": "fedbox.rpc",
    "Status": "fedbox.rpc",
    "connect": "fedbox.rpc",
    "FileGrid": "fedbox.fl",
}
"""Names imported on first use -> the module that defines them."""


def __getattr__(name: str) -> object:
    """``fedbox.connect``, ``fedbox.FileGrid``... without importing them up front."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fedbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
