"""The three-way decision for one path: the folder, the hub and the journal.

Each side is compared with the journal (what both agreed on last time), so the decision
knows *who* changed, not only that the two differ: an edit on one side travels to the
other; edits on both become a conflict copy; a delete never wins over an edit (nothing
is lost); equal contents on both sides are simply adopted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fedbox.hub.sync.journal import Synced

__all__ = ["Action", "LocalFile", "RemoteFile", "decide"]


@dataclass(frozen=True, slots=True)
class LocalFile:
    sha256: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class RemoteFile:
    version: int
    sha256: str
    size: int


class Action(enum.Enum):
    NOTHING = "nothing"
    UPLOAD = "upload"
    DOWNLOAD = "download"
    DELETE_REMOTE = "delete remote"
    DELETE_LOCAL = "delete local"
    CONFLICT = "conflict"
    """Both sides changed differently: keep the local file as a copy, take the hub's."""
    ADOPT = "adopt"
    """Both sides hold the same bytes already: only the journal moves."""
    FORGET = "forget"
    """Gone on both sides: only the journal entry goes."""


def _local_changed(local: LocalFile | None, base: Synced | None) -> bool:
    if base is None or base.absent:
        return local is not None
    return local is None or local.sha256 != base.sha256


def _remote_changed(remote: RemoteFile | None, base: Synced | None) -> bool:
    if base is None:
        return remote is not None
    return remote is None or remote.version != base.version


def decide(local: LocalFile | None, base: Synced | None, remote: RemoteFile | None) -> Action:
    """What to do so both sides hold the same file (see the module docstring)."""
    here, there = _local_changed(local, base), _remote_changed(remote, base)
    if not here and not there:
        return Action.NOTHING
    if not here:
        if remote is None:
            return Action.FORGET if local is None else Action.DELETE_LOCAL
        if local is not None and local.sha256 == remote.sha256:
            return Action.ADOPT  # a new version of the same bytes (re-announced)
        return Action.DOWNLOAD
    if not there:
        if local is None:
            return Action.DELETE_REMOTE if remote is not None else Action.FORGET
        return Action.UPLOAD
    if local is None:
        return Action.FORGET if remote is None else Action.DOWNLOAD
    if remote is None:
        return Action.UPLOAD
    return Action.ADOPT if local.sha256 == remote.sha256 else Action.CONFLICT
