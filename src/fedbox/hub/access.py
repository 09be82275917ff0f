"""Who may read and write each hub path: the namespace rules plus ``syft.pub.yaml`` files.

``fedbox.datasite.permissions`` evaluates rules held in memory (``PermissionSet``); its
loader walks a disk folder, which the hub does not have, so the hub feeds it the
permission files stored in its own index instead (:meth:`AccessRules.reload`), and swaps
in a new set whenever a ``syft.pub.yaml`` is written, moved or deleted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import Enum
from functools import lru_cache
from typing import TypeVar

from fedbox.datasite.identity import validate_email
from fedbox.datasite.paths import OUTBOX_PREFIX, parse_outbox_dir
from fedbox.datasite.permission_files import DATASITES, PERMISSION_FILE, split_path
from fedbox.datasite.permissions import (
    MAX_PERMISSION_FILE_BYTES,
    InvalidPermissionFile,
    Level,
    PermissionFile,
    PermissionSet,
    parse_permission_file,
)
from fedbox.errors import InvalidIdentity
from fedbox.hub.index import Change, FileIndex

__all__ = ["AccessRules", "Verdict", "check_path", "is_rules_path", "parse_rules_text"]

logger = logging.getLogger(__name__)


class Verdict(Enum):
    """What the caller may do with a path; HIDDEN answers exactly like a missing path."""

    HIDDEN = 0
    READ = 1
    WRITE = 2


def check_path(path: str) -> tuple[str, ...]:
    """Validate a hub path and return its segments; InvalidIdentity (400) if it is not one.

    Only ``datasites/{email}/...`` and ``syft_outbox_inbox_{a}_to_{b}/...`` exist.
    This depends on the text alone, never on what is stored, so refusing it tells
    nobody anything.
    """
    parts = split_path(path)
    if len(parts) < 2:
        raise InvalidIdentity(f"{path!r} is a top-level name; files live in folders below it", path)
    if parts[0] == DATASITES:
        validate_email(parts[1])
    elif parts[0].startswith(OUTBOX_PREFIX):
        parse_outbox_dir(parts[0])
    else:
        raise InvalidIdentity(
            f"{path!r} is outside the hub's namespace (datasites/EMAIL/... or "
            "syft_outbox_inbox_A_to_B/...)",
            path,
        )
    return parts


def parse_rules_text(data: bytes, path: str) -> PermissionFile:
    """Parse an uploaded ``syft.pub.yaml``; InvalidPermissionFile says what is wrong."""
    folder = path.rsplit("/", 1)[0]
    if len(data) > MAX_PERMISSION_FILE_BYTES:
        raise InvalidPermissionFile(folder, f"is more than {MAX_PERMISSION_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPermissionFile(folder, f"is not UTF-8 text: {exc}") from exc
    return parse_permission_file(text, folder)


def is_rules_path(path: str) -> bool:
    return path.startswith(DATASITES + "/") and path.rsplit("/", 1)[-1] == PERMISSION_FILE


@lru_cache(maxsize=4096)
def _outbox_parties(top: str) -> tuple[str, str]:
    """(writer, reader) of an outbox folder, parsed once: each change is checked against
    every open feed's user, a few hundred times for one folder name."""
    return parse_outbox_dir(top)


def _parties_of(path: str) -> tuple[str, str] | None:
    """(writer, reader) of the outbox ``path`` is in; None for a datasite path."""
    top = path.split("/", 1)[0]
    return _outbox_parties(top) if top.startswith(OUTBOX_PREFIX) else None


def _owned_by(user: str, path: str) -> bool:
    """Whether ``path`` is in ``user``'s own datasite, where the owner may do anything
    (the rules' first principle): answered without evaluating the rules, as a burst of
    an owner's new files asks it once per file, none of them cached yet."""
    top, _, rest = path.partition("/")
    return top == DATASITES and rest.partition("/")[0] == user


def _touches_rules(change: Change) -> bool:
    return is_rules_path(change.path) or bool(change.old_path and is_rules_path(change.old_path))


class AccessRules:
    """Answers "what may USER do with PATH", cached until a permission file changes."""

    def __init__(self, index: FileIndex) -> None:
        self._index = index
        # The rules and the verdicts drawn from them, swapped together in one assignment so
        # a verdict from old rules never lands in the new cache.
        self._state: tuple[
            PermissionSet, dict[tuple[str, str], Verdict], dict[tuple[str, str], bool]
        ] = (PermissionSet(), {}, {})
        """The rules, the verdicts drawn from them, and the answers of :meth:`may_read`."""
        self._seen = index.head()
        self._catching_up = threading.Lock()
        self.reload()
        index.subscribe(self._on_changes)

    def reload(self) -> None:
        """Read every permission file from the index (at start, and after one changes)."""
        found: list[PermissionFile] = []
        for row in self._index.under(DATASITES):
            if not is_rules_path(row.path):
                continue
            folder = row.path.rsplit("/", 1)[0]
            try:
                with self._index.blobs.open(row.blob) as f:
                    found.append(parse_rules_text(f.read(), row.path))
            except (OSError, InvalidPermissionFile) as exc:
                logger.warning("%s: %s; it denies all but the owner", row.path, exc)
                found.append(PermissionFile.unreadable(folder, str(exc)))
        self._state = (PermissionSet(found), {}, {})

    def _on_changes(self, batch: list[Change]) -> None:
        if any(_touches_rules(c) for c in batch):
            self.reload()

    def catch_up(self, upto: int | None = None) -> None:
        """Reload if a permission file changed since the last look, through any hub process.

        When the change log grows through another process, its NOTIFY has the feeds'
        shared tail read the new rows, which pass through :meth:`observe`: a rule written
        there applies here within that delay, with no query of its own. A feed about to
        filter changes up to ``upto`` calls this (free when already there), and so does a
        refusal before it is answered, so neither ever acts on rules older than what it
        shows. This process's own writes reload at once (:meth:`_on_changes`).
        """
        if upto is not None and self._seen >= upto:
            return
        with self._catching_up:
            changed, seen = False, self._seen
            while batch := self._index.changes(seen, limit=1000):
                changed = changed or any(_touches_rules(c) for c in batch)
                seen = batch[-1].seq
            if changed:
                self.reload()
            self._seen = seen  # only now: the lock-free checks above trust it

    def observe(self, after: int, rows: list[Change]) -> None:
        """Catch up from rows read for someone else: ``rows`` are all the log holds after
        ``after`` (the feeds' shared tail passes each batch it reads, in a worker thread).
        Rows starting beyond what was seen leave a gap, which :meth:`catch_up` reads from
        the log: these reads are how rules written through another process arrive."""
        if rows and after > self._seen:
            self.catch_up(rows[-1].seq)
            return
        with self._catching_up:
            if not rows or after > self._seen or rows[-1].seq <= self._seen:
                return
            if any(_touches_rules(c) for c in rows if c.seq > self._seen):
                self.reload()
            self._seen = rows[-1].seq

    def seen_through(self, upto: int) -> bool:
        """Whether the rules already reflect every change up to ``upto`` (no I/O): a feed
        on the event loop may filter such changes without :meth:`catch_up`."""
        return self._seen >= upto

    def verdict(self, user: str, path: str) -> Verdict:
        """The caller's rights on a path already validated by :func:`check_path`."""
        rules, verdicts, _ = self._state
        return _remembered(verdicts, (user, path), lambda: self._decide(rules, user, path))

    @staticmethod
    def _decide(rules: PermissionSet, user: str, path: str) -> Verdict:
        if AccessRules._allowed(rules, user, path, Level.WRITE):
            return Verdict.WRITE
        readable = AccessRules._allowed(rules, user, path, Level.READ)
        return Verdict.READ if readable else Verdict.HIDDEN

    @staticmethod
    def readers(change: Change) -> set[str] | None:
        """Who alone may read what ``change`` touched, when the path says so without the
        rules (an outbox: its two parties); None when anyone might (a datasite path)."""
        users: set[str] = set()
        for path in (change.path, change.old_path):
            if path is None:
                continue
            parties = _parties_of(path)
            if parties is None:
                return None
            users.update(parties)
        return users

    def may_read(self, user: str, path: str) -> bool:
        """Whether ``path`` is not hidden from ``user``: the verdict if known, else only
        the read question (whoever may write may read: a level implies those below it).
        The feed asks this of every reader for every new file; the full verdict cost two
        evaluations of the rules."""
        rules, verdicts, readable = self._state
        key = (user, path)
        verdict = verdicts.get(key)
        if verdict is not None:
            return verdict is not Verdict.HIDDEN
        return _remembered(readable, key, lambda: self._allowed(rules, user, path, Level.READ))

    @staticmethod
    def _allowed(rules: PermissionSet, user: str, path: str, level: Level) -> bool:
        """Whether ``user`` may ``level`` (READ or WRITE) ``path``: its owner may; an
        outbox's sender may write it and both its parties read it; else the rules say."""
        if _owned_by(user, path):
            return True
        parties = _parties_of(path)
        if parties is not None:
            return user == parties[0] if level is Level.WRITE else user in parties
        return rules.allowed(user, path, level)


_K = TypeVar("_K")
_V = TypeVar("_V")
_REMEMBERED = 100_000
"""Answers one cache holds before it starts again (a rules change empties it anyway)."""


def _remembered(cache: dict[_K, _V], key: _K, compute: Callable[[], _V]) -> _V:
    """``cache[key]``, computed and kept if missing."""
    found = cache.get(key)
    if found is None:
        found = compute()
        if len(cache) > _REMEMBERED:
            cache.clear()
        cache[key] = found
    return found
