"""Where one participant's things live: the shared store root and its private state dir."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fedbox.datasite.identity import validate_email

__all__ = ["Workspace", "default_state_dir", "fedbox_home"]


def fedbox_home() -> Path:
    """``$FEDBOX_HOME`` if set, else ``~/.fedbox``: the parent of every state dir."""
    env = os.environ.get("FEDBOX_HOME")
    return Path(env).expanduser() if env else Path.home() / ".fedbox"


def default_state_dir(email: str) -> Path:
    """Private state (futures, audit log, keys) of one identity, outside any store."""
    return fedbox_home() / validate_email(email)


@dataclass(frozen=True, slots=True)
class Workspace:
    """One identity's view: the store it talks through and where it keeps private state.

    The state dir is never inside the store root, so nothing private is ever synced.
    """

    email: str
    state_dir: Path

    @classmethod
    def for_email(cls, email: str, state_dir: str | os.PathLike[str] | None = None) -> Workspace:
        email = validate_email(email)
        path = Path(state_dir) if state_dir is not None else default_state_dir(email)
        return cls(email=email, state_dir=path)

    def ensure(self) -> Workspace:
        """Create the state dir, private to this user (0700)."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self

    @property
    def futures_db(self) -> Path:
        return self.state_dir / "futures.db"

    @property
    def audit_db(self) -> Path:
        return self.state_dir / "audit.db"
