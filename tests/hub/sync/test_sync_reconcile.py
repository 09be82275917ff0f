"""The three-way decision, case by case (a pure function: no hub needed)."""

from __future__ import annotations

import pytest

from fedbox.hub.sync.journal import Synced
from fedbox.hub.sync.reconcile import Action, LocalFile, RemoteFile, decide

BASE = Synced(version=5, sha256="aa", size=1, mtime_ns=1)
SAME = LocalFile("aa", 1, 1)
EDITED = LocalFile("bb", 2, 2)
AT_BASE = RemoteFile(5, "aa", 1)
NEWER = RemoteFile(9, "cc", 3)


@pytest.mark.parametrize(
    ("local", "base", "remote", "action"),
    [
        (SAME, BASE, AT_BASE, Action.NOTHING),
        (None, None, None, Action.NOTHING),
        (EDITED, BASE, AT_BASE, Action.UPLOAD),
        (EDITED, None, None, Action.UPLOAD),
        (SAME, BASE, NEWER, Action.DOWNLOAD),
        (None, None, NEWER, Action.DOWNLOAD),
        (None, BASE, AT_BASE, Action.DELETE_REMOTE),
        (SAME, BASE, None, Action.DELETE_LOCAL),
        (EDITED, BASE, NEWER, Action.CONFLICT),
        (EDITED, None, NEWER, Action.CONFLICT),
        (LocalFile("cc", 3, 3), BASE, NEWER, Action.ADOPT),
        (SAME, BASE, RemoteFile(9, "aa", 1), Action.ADOPT),  # re-announced, same bytes
        (None, BASE, NEWER, Action.DOWNLOAD),  # an edit beats a delete...
        (EDITED, BASE, None, Action.UPLOAD),  # ...on either side
        (None, BASE, None, Action.FORGET),
        # Deleted here but the hub refused (another's file): stays away until it changes.
        (None, Synced(5, "aa", 1, 1, absent=True), AT_BASE, Action.NOTHING),
        (None, Synced(5, "aa", 1, 1, absent=True), NEWER, Action.DOWNLOAD),
    ],
)
def test_decide(
    local: LocalFile | None, base: Synced | None, remote: RemoteFile | None, action: Action
) -> None:
    assert decide(local, base, remote) is action
