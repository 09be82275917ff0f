"""Leases: which live process of this state dir holds a claim.

A request claimed but unanswered is answered again at start (issue 11.1), but only if
the process that claimed it is gone: two processes may serve from one state dir. Each
serving app holds an exclusive ``flock`` on a file of its own under
``{state_dir}/leases/`` for as long as it runs; the kernel drops the lock when the
process dies, kill -9 included, so "is its lock still held" is "is it still running".
"""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path

__all__ = ["Lease"]


class Lease:
    """Held by one running app; claims it makes carry its :attr:`token`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder = folder
        self.token = uuid.uuid4().hex
        self._path = folder / f"{self.token}.lock"
        self._fd: int | None = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def held_by_another(self, token: str | None) -> bool:
        """Whether ``token`` names a lease another live process holds now."""
        if token is None or token == self.token or not token.isalnum():
            return False
        path = self.folder / f"{token}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        path.unlink(missing_ok=True)  # its holder died: the file is litter
        return False

    def release(self) -> None:
        """Let go (idempotent); claims still open under this token become resumable."""
        if self._fd is not None:
            self._path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
