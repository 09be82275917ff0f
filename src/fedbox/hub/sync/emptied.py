"""Folders left empty by a remote delete or rename, removed where the daemon emptied them.

Folders are not synced as objects: when another participant deletes a file (or renames
its folder), this daemon removes or renames the file here, and the folders that held it
would stay behind, empty, as ghost trees. So after each file it removes for a remote
change, the daemon removes the folders above it that are now empty, bottom-up.

Each removal is one ``rmdir`` (:meth:`fedbox.store.Store.remove_folder`, which reaches
the folder without following links): a folder that holds anything (a file the user or
the RPC layer is writing this very moment, a folder the user made) stays, and so do the
folders above it. Writers that may race a removal make their folder again when it
vanishes: the store's writer, and the daemon's own through :func:`in_folder_of`;
watchers watch a folder made again (:mod:`fedbox.store.inotify`). The root, every
top-level folder and a datasite's own folder (``datasites/{email}``) always stay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fedbox.store import Store

__all__ = ["in_folder_of", "remove_emptied"]

logger = logging.getLogger(__name__)

_TRIES = 5
"""Times a new entry's folder is made before its creation gives up (FileNotFoundError)."""

_T = TypeVar("_T")


def in_folder_of(target: Path, create: Callable[[], _T]) -> _T:
    """``create()``, which makes an entry in ``target``'s folder: the folder is made if
    missing, and again if another worker removed it, emptied, in between."""
    for _ in range(_TRIES - 1):
        try:
            return create()
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
    return create()


def _kept(folders: list[str]) -> int:
    """How many of the leading ``folders`` always stay: a top-level folder, and under
    ``datasites`` the datasite's own folder too."""
    return 2 if folders[:1] == ["datasites"] else 1


def remove_emptied(folder: Store, rel: str) -> None:
    """Remove the folders holding the file ``rel`` (just removed) that are now empty,
    deepest first, up to the first that is not."""
    folders = rel.split("/")[:-1]
    removed: list[str] = []
    for depth in range(len(folders), _kept(folders), -1):
        path = "/".join(folders[:depth])
        if not folder.remove_folder(path):  # not empty, gone, or a link: it stays
            break
        removed.append(path)
    if removed:
        logger.debug("removed emptied folders %s", removed)
