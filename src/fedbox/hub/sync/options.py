"""What a :class:`~fedbox.hub.sync.daemon.SyncDaemon` is told to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SyncOptions"]


@dataclass(frozen=True)
class SyncOptions:
    folder: Path
    hub: str
    email: str
    state_dir: Path | None = None
    only: tuple[str, ...] = ()
    """gitignore-style globs: sync only these paths (applied by the hub's feed too)."""
    min_free: int = 100 << 20
    """Downloads that would leave less free space than this are refused (per file)."""
    workers: int = 32
    """Paths synced at once: mostly waiting on the hub or the disk, and a burst's small
    uploads share requests (and its downloads' fsyncs share disk commits) this wide."""
    poll: bool = False
    """Walk the folder every few seconds instead of OS events (network mounts)."""
    resumable_above: int = 64 << 20
    part_size: int = 16 << 20
