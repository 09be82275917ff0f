"""Permission rules: who may read, write or administer a path in a datasite.

Contract
--------
Paths are POSIX strings relative to a store root, e.g. ``datasites/alice@x.org/public/a.csv``.
Absolute paths, ``.``/``..``/empty segments, backslashes and control characters raise
:class:`~fedbox.errors.InvalidIdentity`; so do an invalid user email or datasite owner.
Paths outside ``datasites/{email}/`` are not governed by permission files and are denied
here (the outbox folders follow the message layout rule instead, enforced elsewhere).

``PermissionSet.explain(user, path, level)`` decides in this order:

1. The owner (``{email}`` in ``datasites/{email}/``) is allowed everything on their datasite.
2. Writing a file named ``syft.pub.yaml`` (in any letter case) needs ``admin``, not
   ``write``: otherwise anyone who may write a folder could grant themselves more.
3. The permission files that apply are those in the folders from ``datasites/{email}`` down
   to the folder holding the path. A file with ``terminal: true`` ends the descent: files
   deeper than it are ignored.
4. Files are tried deepest first. Within a file, rules are tried most specific first
   (ordering below). The first rule whose pattern matches the path (relative to the folder
   holding the file) decides, whatever its answer: a rule that does not grant the level
   denies, and less specific rules or shallower files are not consulted.
   A file with no matching rule passes the question to the next shallower file.
5. If no rule in any applicable file matches, the access is denied.

A rule grants a level to the users listed under that level or a higher one
(``admin`` ⇒ ``write`` ⇒ ``read``). In access lists ``"*"`` means everyone and ``"USER"``
means the requesting user, whoever that is (as in SyftBox): it is meant for patterns with
the ``{useremail}`` placeholder (``{{.UserEmail}}`` is accepted as SyftBox's spelling), so
``pattern: "{useremail}/**"`` with ``write: [USER]`` lets each user write only below the
folder named with their own email. The email is substituted literally, never as a glob.

Rule ordering within one file (most specific first), compared in this order:

1. kind: a literal pattern (no wildcard) beats one with only ``*``/``?``/``[...]`` wildcards,
   which beats one with a ``**`` segment;
2. the longer literal prefix (characters before the first wildcard) wins;
3. more literal characters in the whole pattern win;
4. the rule written earlier in the file wins.

The placeholder counts as literal text (its spelling ``{useremail}``, 11 characters).

Glob syntax: ``*`` matches any characters within one segment (leading dots included),
``?`` one character, ``[abc]``/``[!abc]`` one character from a set, none of them ``/``.
A segment that is exactly ``**`` matches zero or more whole segments, so ``public/**``
matches ``public`` itself and everything below it, and ``**/*.csv`` matches ``a.csv``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from types import MappingProxyType

from fedbox.datasite.identity import validate_email
from fedbox.datasite.permission_files import (
    DATASITES,
    EVERYONE,
    PERMISSION_FILE,
    REQUESTING_USER,
    Access,
    InvalidPermissionFile,
    Level,
    PermissionFile,
    Rule,
    is_permission_file,
    parse_permission_file,
)
from fedbox.datasite.permission_files import owner_of as _owner_of
from fedbox.datasite.permission_files import split_path as _split_path
from fedbox.errors import InvalidIdentity, PermissionDenied

__all__ = [
    "DATASITES",
    "EVERYONE",
    "MAX_PERMISSION_FILE_BYTES",
    "PERMISSION_FILE",
    "REQUESTING_USER",
    "Access",
    "Decision",
    "InvalidPermissionFile",
    "Level",
    "PermissionFile",
    "PermissionSet",
    "Rule",
    "is_permission_file",
    "parse_permission_file",
    "permissions_from_files",
]

logger = logging.getLogger(__name__)

MAX_PERMISSION_FILE_BYTES = 1 << 20
"""Larger permission files are refused unread: nobody needs a megabyte of rules."""


# --- decisions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one access question and what decided it (for errors and audits).

    ``needed`` differs from ``level`` when writing a permission file, which needs admin.
    ``file`` and ``rule``/``rule_index`` name the deciding rule, if a rule decided.
    """

    allowed: bool
    user: str
    path: str
    level: Level
    needed: Level
    reason: str
    file: str | None = None
    rule: Rule | None = None
    rule_index: int | None = None

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else "denied"
        return f"{self.level.value} {self.path} by {self.user}: {verdict}, {self.reason}"


class PermissionSet:
    """All permission files of a store, keyed by folder; answers access questions.

    Immutable: ``with_file``/``without_file`` return a new set, so a hub can swap its
    current set atomically when a ``syft.pub.yaml`` changes.
    """

    __slots__ = ("_files",)

    def __init__(self, files: Mapping[str, PermissionFile] | Iterable[PermissionFile] = ()) -> None:
        items = files.items() if isinstance(files, Mapping) else ((f.folder, f) for f in files)
        table: dict[str, PermissionFile] = {}
        for folder, pfile in items:
            if folder != pfile.folder:
                raise ValueError(
                    f"key {folder!r} does not match the file's folder {pfile.folder!r}"
                )
            if folder in table:
                raise ValueError(f"two permission files for folder {folder!r}")
            table[folder] = pfile
        self._files = MappingProxyType(table)

    @property
    def files(self) -> Mapping[str, PermissionFile]:
        """Read-only view folder → file."""
        return self._files

    def __len__(self) -> int:
        return len(self._files)

    def __repr__(self) -> str:
        return f"PermissionSet({len(self._files)} files)"

    def with_file(self, pfile: PermissionFile) -> PermissionSet:
        """A copy with ``pfile`` added or replacing the file of its folder."""
        return PermissionSet({**self._files, pfile.folder: pfile})

    def without_file(self, folder: str) -> PermissionSet:
        """A copy without the file of ``folder`` (no error if there was none)."""
        return PermissionSet({k: v for k, v in self._files.items() if k != folder})

    def applicable(self, path: str | PurePosixPath) -> list[PermissionFile]:
        """The files that govern ``path``, shallowest first, cut after a terminal one."""
        return self._applicable(_split_path(path))

    def _applicable(self, parts: tuple[str, ...]) -> list[PermissionFile]:
        found: list[PermissionFile] = []
        # Folders from datasites/{email} down to the folder holding the path.
        for depth in range(2, len(parts)):
            pfile = self._files.get("/".join(parts[:depth]))
            if pfile is None:
                continue
            found.append(pfile)
            if pfile.terminal:
                break
        return found

    def explain(self, user: str, path: str | PurePosixPath, level: Level | str) -> Decision:
        """Decide and say why (the full contract is in the module docstring)."""
        user = validate_email(user)
        level = Level(level)
        parts = _split_path(path)
        text = "/".join(parts)
        owner = _owner_of(parts)
        needed = level
        if level is Level.WRITE and is_permission_file(parts[-1]):
            needed = Level.ADMIN

        denied = Decision(False, user, text, level, needed, reason="")
        if owner is None:
            return replace(denied, reason="the path is not inside datasites/{email}/")
        if user == owner:
            return replace(denied, allowed=True, reason=f"{user} owns the datasite")
        elevated = " (writing a permission file needs admin)" if needed is not level else ""
        for pfile in reversed(self._applicable(parts)):
            if pfile.problem is not None:
                return replace(
                    denied,
                    reason=f"{pfile.path} is unreadable ({pfile.problem}); it denies all but "
                    "the owner",
                    file=pfile.path,
                )
            relative = "/".join(parts[len(pfile.folder.split("/")) :])
            for index, rule in pfile.by_specificity():
                if rule.matches(relative, user):
                    granted = rule.access.grants(user, needed)
                    verb = "grants" if granted else "does not grant"
                    return replace(
                        denied,
                        allowed=granted,
                        reason=f"rule {index} ({rule.pattern!r}) of {pfile.path} {verb} "
                        f"{needed.value}{elevated}",
                        file=pfile.path,
                        rule=rule,
                        rule_index=index,
                    )
        return replace(denied, reason="no permission rule matches the path")

    def allowed(self, user: str, path: str | PurePosixPath, level: Level | str) -> bool:
        """True if ``user`` may access ``path`` at ``level``; see :meth:`explain` for why."""
        return self.explain(user, path, level).allowed

    def check(self, user: str, path: str | PurePosixPath, level: Level | str) -> Decision:
        """Return the decision if allowed, else raise PermissionDenied carrying the reason."""
        decision = self.explain(user, path, level)
        if not decision.allowed:
            raise PermissionDenied(str(decision), decision.path)
        return decision


# --- building a set from the files, wherever they are kept ----------------------------------


def permissions_from_files(
    files: Iterable[tuple[str, bytes | str | Exception]], *, strict: bool = False
) -> PermissionSet:
    """The rules of every permission file given, as a PermissionSet.

    Each item is a file's store-relative path (``datasites/{email}/.../syft.pub.yaml``)
    and its content, or the exception met while reading it. Finding the files is the
    caller's job: a folder walk (``fedbox.store.local_permissions.load_permissions``), a
    hub's database; this only evaluates what it is given.

    A file that is larger than :data:`MAX_PERMISSION_FILE_BYTES`, not UTF-8, not valid or
    could not be read raises InvalidPermissionFile when ``strict``; otherwise it is logged
    and replaced by a fail-closed stand-in (``PermissionFile.unreadable``), so one owner's
    typo does not stop a hub serving everybody else, nor open their data. So is a second
    file for one folder (names differing only in case). A path that is not inside
    ``datasites/{email}/`` is skipped with a warning (InvalidIdentity when ``strict``).
    """
    found: dict[str, PermissionFile] = {}
    for path, content in files:
        folder = _folder_of(path, strict)
        if folder is None:
            continue
        if folder in found:
            error = InvalidPermissionFile(
                folder, "there is more than one (names differing in case)"
            )
        else:
            try:
                found[folder] = parse_permission_file(_text_of(folder, content), folder)
                continue
            except InvalidPermissionFile as exc:
                error = exc
        if strict:
            raise error
        logger.warning("%s: %s; it denies all but the owner", path, error.problem)
        found[folder] = PermissionFile.unreadable(folder, error.problem)
    return PermissionSet(found.values())


def _folder_of(path: str, strict: bool) -> str | None:
    """The folder a permission file at ``path`` governs, or None to skip it."""
    try:
        parts = _split_path(path, "permission file path")
        if not is_permission_file(parts[-1]):
            raise ValueError(f"{path!r} is not a permission file ({PERMISSION_FILE})")
        folder = parts[:-1]
        if _owner_of(folder) is None:
            raise InvalidIdentity(f"{path!r} is not inside {DATASITES}/{{email}}/", path)
    except InvalidIdentity as exc:
        if strict:
            raise
        logger.warning("skipping %s: %s", path, exc)
        return None
    return "/".join(folder)


def _text_of(folder: str, content: bytes | str | Exception) -> str:
    """The text of a permission file; InvalidPermissionFile if it cannot be used. Never
    quotes the content: the problem is stored and may be shown to others."""
    if isinstance(content, InvalidPermissionFile):
        raise content
    if isinstance(content, Exception):
        raise InvalidPermissionFile(folder, f"cannot be read: {content}") from content
    data = content.encode() if isinstance(content, str) else content
    if len(data) > MAX_PERMISSION_FILE_BYTES:
        raise InvalidPermissionFile(
            folder, f"is more than the {MAX_PERMISSION_FILE_BYTES} bytes allowed"
        )
    if isinstance(content, str):
        return content
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPermissionFile(
            folder, f"is not UTF-8 text (bad byte at offset {exc.start})"
        ) from exc
