"""Where one participant's things live: the shared store root and its private state dir."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from fedbox.datasite.identity import validate_email
from fedbox.errors import PermissionDenied

__all__ = [
    "Workspace",
    "create_private",
    "create_private_dir",
    "default_state_dir",
    "fedbox_home",
]

logger = logging.getLogger(__name__)

_OPEN_BITS = 0o077
"""Group and other permissions: none belong on private keys, futures or the audit log."""


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
        """Create the state dir private to this user (0700), and make an existing one
        private: it and its folders 0700, its files without group or other access
        (0600), each change logged (issue 11.17). PermissionDenied, saying what to do, if
        something in it is not this user's to tighten."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.name == "posix":
            _make_private(self.state_dir)
        return self

    @property
    def futures_db(self) -> Path:
        return self.state_dir / "futures.db"

    @property
    def audit_db(self) -> Path:
        return self.state_dir / "audit.db"


def create_private(path: Path) -> Path:
    """Make ``path`` an empty file only its owner may read, unless it exists.

    State files (SQLite databases, whose journals SQLite creates with the database's
    mode) would otherwise follow the umask, 0644, and be tightened, with a warning, at
    every start.
    """
    create_private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    return path


def create_private_dir(path: Path) -> Path:
    """Make ``path`` and every missing folder above it 0700.

    ``mkdir(parents=True, mode=0o700)`` gives the parents it creates the umask's mode
    (0755), which the next start then tightens with a warning.
    """
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    return missing[0] if missing else path


def _make_private(top: Path) -> None:
    """Remove group and other access from ``top`` and everything under it (links are
    left alone: their target is not ours to change, and they grant nothing)."""
    for dirpath, dirnames, filenames in os.walk(top):
        for name in (".", *dirnames, *filenames):
            _tighten(Path(dirpath, name) if name != "." else Path(dirpath))


def _tighten(path: Path) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return  # removed meanwhile (a SQLite journal)
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & _OPEN_BITS:
        return
    old = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.getuid():
        raise PermissionDenied(
            f"{path} (mode {old:o}) belongs to uid {st.st_uid}, not to you (uid "
            f"{os.getuid()}), so fedbox cannot make it private; have its owner run "
            f"'chmod go-rwx {path}', or use another state dir (FEDBOX_HOME)",
            str(path),
        )
    try:
        path.chmod(old & ~_OPEN_BITS)
    except OSError as exc:
        raise PermissionDenied(
            f"cannot make {path} private (mode {old:o}): {exc}; run 'chmod go-rwx {path}'",
            str(path),
        ) from exc
    logger.warning("%s was open to others (mode %o); made it %o", path, old, old & ~_OPEN_BITS)
