"""What ``fedbox sync`` leaves alone: ``DIR/.fedboxignore`` (gitignore syntax) over defaults,
and what a ``--only`` selection leaves out.

Hidden names (``.git``, editors' ``.swp`` files, the daemon's own ``.fedbox-sync``
state and temporaries) never sync: the folder watcher does not report them either. Paths
outside the hub's namespace (anything but ``datasites/`` and ``syft_outbox_inbox_*``)
stay local too: the hub would refuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pathspec

from fedbox.hub.selection import Selection, selection

__all__ = ["DEFAULT_IGNORES", "IGNORE_FILE", "SyncRules"]

IGNORE_FILE = ".fedboxignore"

DEFAULT_IGNORES = (
    ".*",
    "__pycache__/",
    "*.pyc",
    "*~",
    "*.swp",
    "*.tmp",
    "*.part",
    "venv/",
    "node_modules/",
    "*.conflict",
    "*.conflict.*",
    "*.rejected",
    "*.rejected.*",
)
"""Temporaries, caches, virtualenvs, and this daemon's conflict and rejected copies."""


_REMEMBERED = 100_000
"""Answers of :meth:`SyncRules.syncs` kept at most (then forgotten all at once)."""


def _in_namespace(rel: str) -> bool:
    top, _, rest = rel.partition("/")
    return bool(rest) and (top == "datasites" or top.startswith("syft_outbox_inbox_"))


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed ignore file (None: there is none)."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class SyncRules:
    """Which folder paths take part in the sync, as the ignore file said when read
    (:meth:`reloaded` reads it again when it changed)."""

    def __init__(self, root: Path, only: Sequence[str] = ()) -> None:
        self._root = root
        ignore_file = root / IGNORE_FILE
        self.signature = _signature(ignore_file)
        lines = list(DEFAULT_IGNORES)
        if self.signature is not None:
            lines += ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
        self._ignored = pathspec.GitIgnoreSpec.from_lines(lines)
        self.only: tuple[str, ...] = tuple(only)
        self._selected: Selection | None = selection(only)
        self._answers: dict[str, bool] = {}
        """Paths already asked about: a synced file is asked two or three times (its
        folder event, its worker, the feed's news of it), each a match of every pattern."""

    def reloaded(self) -> SyncRules | None:
        """The rules with the ignore file read again, or None if it did not change."""
        if _signature(self._root / IGNORE_FILE) == self.signature:
            return None
        return SyncRules(self._root, self.only)

    def syncs(self, rel: str) -> bool:
        """True if ``rel`` (a POSIX path relative to DIR) is mirrored."""
        answer = self._answers.get(rel)
        if answer is None:
            answer = self._decide(rel)
            if len(self._answers) >= _REMEMBERED:
                self._answers.clear()
            self._answers[rel] = answer
        return answer

    def _decide(self, rel: str) -> bool:
        if not _in_namespace(rel) or self._ignored.match_file(rel):
            return False
        return self._selected is None or self._selected(rel)
