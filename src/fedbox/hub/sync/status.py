"""What a daemon is doing, for ``fedbox sync status``: kept as ``DIR/.fedbox-sync/status.json``.

A file rather than a socket so that the status of a daemon that died is still readable
(``running`` then says since when it is stale) and no port is opened.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedbox.errors import FedboxError

__all__ = ["STATE_DIR", "StatusBoard", "SyncStatus", "read_status"]

STATE_DIR = ".fedbox-sync"
_FILE = "status.json"
_KEEP = 100


@dataclass
class SyncStatus:
    folder: str
    hub: str
    email: str
    pid: int
    running: bool = False
    started: float = 0.0
    updated: float = 0.0
    pending_uploads: int = 0
    pending_downloads: int = 0
    uploaded: int = 0
    downloaded: int = 0
    deleted: int = 0
    moved: int = 0
    events: str = ""
    """Where local changes come from: inotify, or a walk of the folder every few seconds."""
    ignores_read: float = 0.0
    """When ``.fedboxignore`` was last applied (at start, then each time it changed)."""
    cursor: int = 0
    head: int = 0
    caught_up: bool = False
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    last_error: str | None = None

    @property
    def lag(self) -> int:
        """Changes on the hub this folder has not applied yet."""
        return max(self.head - self.cursor, 0)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "lag": self.lag}


def read_status(folder: Path) -> SyncStatus:
    """The last status a daemon wrote for ``folder``; FedboxError if none ever ran."""
    path = folder / STATE_DIR / _FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FedboxError(f"no fedbox sync has run on {folder} ({path} is missing)") from exc
    data.pop("lag", None)
    return SyncStatus(**data)


class StatusBoard:
    """The daemon's live status, saved (atomically) at most every ``every`` seconds."""

    def __init__(self, folder: Path, status: SyncStatus, every: float = 0.25) -> None:
        self._path = folder / STATE_DIR / _FILE
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self.status = status
        self._lock = threading.Lock()
        self._every = every
        self._saved = 0.0

    def update(self, **values: Any) -> None:
        with self._lock:
            for key, value in values.items():
                setattr(self.status, key, value)
        self.save()

    def count(self, key: str) -> None:
        with self._lock:
            setattr(self.status, key, getattr(self.status, key) + 1)
        self.save()

    def note(self, kind: str, **entry: Any) -> None:
        """Add to ``conflicts``, ``rejected`` or ``refused`` (newest last, bounded)."""
        with self._lock:
            items: list[dict[str, Any]] = getattr(self.status, kind)
            items[:] = [i for i in items if i.get("path") != entry.get("path")]
            items.append({**entry, "time": time.time()})
            del items[:-_KEEP]
        self.save(force=True)

    def clear(self, kind: str, path: str) -> None:
        with self._lock:
            items: list[dict[str, Any]] = getattr(self.status, kind)
            items[:] = [i for i in items if i.get("path") != path]

    def save(self, force: bool = False) -> None:
        now = time.time()
        with self._lock:
            if not force and now - self._saved < self._every:
                return
            self._saved = now
            self.status.updated = now
            text = json.dumps(self.status.as_json(), indent=1)
            temp = self._path.with_name(f"{_FILE}.{os.getpid()}.tmp")
            temp.write_text(text)
            os.replace(temp, self._path)
