"""What one ``fedbox ui`` serves: whose state dir and store, where, and its secret."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedbox.datasite.workspace import Workspace

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "LOCAL_HOSTS",
    "WILDCARD_HOSTS",
    "UiSettings",
    "new_token",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Host names a browser on this machine uses for the UI; any other Host header is
refused (a DNS-rebinding page would send its own name)."""


WILDCARD_HOSTS = frozenset({"0.0.0.0", "::"})
"""``--host`` values that listen on every address of the machine."""


def new_token() -> str:
    """The secret in the printed URL: whoever has it may act as the identity."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class UiSettings:
    """One identity's UI. ``root`` is None when no store was given: pages that need the
    store (published keys, datasets, message files, leases) say so instead."""

    email: str
    state_dir: Path
    root: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    token: str = field(default_factory=new_token)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.email, self.state_dir)

    def allows_host(self, name: str) -> bool:
        """Whether requests may name ``name`` as their Host: this machine's names, and
        ``host`` when it is another (``--host``). Listening on every address
        (``0.0.0.0``, ``::``), no name is known in advance, so any is allowed, as Jupyter
        does with remote access on; the cookie still keeps other sites' pages out."""
        if self.host in WILDCARD_HOSTS:
            return True
        return name in LOCAL_HOSTS or name == self.host.strip("[]").lower()

    @property
    def url(self) -> str:
        """Where a browser opens the UI, token included."""
        host = self.host if self.host not in WILDCARD_HOSTS else DEFAULT_HOST
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/?token={self.token}"
