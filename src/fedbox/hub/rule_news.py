"""What a change of a ``syft.pub.yaml`` tells each follower of the change feed.

The feed filters each change by the rules in force when it is read, so a file written
before a rule let Bob read it was never shown to him, and nothing later would show it:
his mirror would never learn it became readable. So when the feed passes a rule change,
it lists, for each reader other than the datasite's owner, every file below the rule's
folder that the reader may read now (and selected with ``only=``), with its current
version. The listing is complete for that folder, which also lets a mirror drop its
copies of files there that it may no longer read.

Built from the change log and the index, it holds for any writer, any hub process and a
reader resuming from an old cursor alike. A reader who may read nothing below the folder
is told nothing: the hub cannot tell whether they could read there before without
telling everybody that the folder's rules changed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from fedbox.datasite.permission_files import owner_of, split_path
from fedbox.hub.access import AccessRules, is_rules_path
from fedbox.hub.index import Change, FileIndex, FileRow
from fedbox.hub.selection import Selection

__all__ = ["RuleListings", "rule_folders"]


def rule_folders(change: Change) -> list[str]:
    """The folders whose rules ``change`` wrote, moved or deleted."""
    paths = [change.path, change.old_path] if change.old_path else [change.path]
    return [p.rsplit("/", 1)[0] for p in paths if is_rules_path(p)]


class RuleListings:
    """The files below a folder whose rules changed, read once per rule change for all
    the feeds of this process (a listing taken any time after the change is as good: a
    later write has its own change after it)."""

    KEEP = 8

    def __init__(self, index: FileIndex, access: AccessRules) -> None:
        self._index = index
        self._access = access
        self._listings: OrderedDict[tuple[str, int], list[FileRow]] = OrderedDict()
        self._lock = threading.Lock()

    def readable(
        self, user: str, folder: str, seq: int, only: Selection | None = None
    ) -> list[FileRow] | None:
        """The files below ``folder`` that ``user`` may read now (None for its owner, whose
        view no rule changes)."""
        if owner_of(split_path(folder)) == user:
            return None
        may_read = self._access.may_read
        return [
            row
            for row in self._listing(folder, seq)
            if may_read(user, row.path) and (only is None or only(row.path))
        ]

    def _listing(self, folder: str, seq: int) -> list[FileRow]:
        key = (folder, seq)
        with self._lock:
            found = self._listings.get(key)
        if found is None:
            found = [row for row in self._index.under(folder) if not is_rules_path(row.path)]
            with self._lock:
                self._listings[key] = found
                while len(self._listings) > self.KEEP:
                    self._listings.popitem(last=False)
        return found
