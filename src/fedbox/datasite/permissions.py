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
2. Writing a file named ``syft.pub.yaml`` needs ``admin``, not ``write``: otherwise anyone
   who may write a folder could grant themselves more.
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
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path, PurePosixPath
from types import MappingProxyType

import yaml

from fedbox.datasite.identity import validate_email
from fedbox.errors import InvalidIdentity, PermissionDenied

__all__ = [
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
    "load_permissions",
    "parse_permission_file",
]

logger = logging.getLogger(__name__)

PERMISSION_FILE = "syft.pub.yaml"
"""The name of a permission file; it applies to its folder and everything below."""

EVERYONE = "*"
"""In an access list: every user."""

REQUESTING_USER = "USER"
"""In an access list: the user asking, whoever that is (pair it with ``{useremail}``)."""

MAX_PERMISSION_FILE_BYTES = 1 << 20
"""Larger permission files are refused unread: nobody needs a megabyte of rules."""

_DATASITES = "datasites"
_PLACEHOLDER = "{useremail}"
_SYFTBOX_PLACEHOLDER = "{{.UserEmail}}"


class Level(StrEnum):
    """An access level; each implies the ones below it (admin ⇒ write ⇒ read)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def implied_by(self) -> tuple[Level, ...]:
        """This level and the levels that include it: a grant of any of them suffices."""
        order = list(Level)
        return tuple(order[order.index(self) :])


class InvalidPermissionFile(ValueError):
    """A ``syft.pub.yaml`` is not valid YAML or does not follow the schema.

    Raised by :func:`parse_permission_file` (and :func:`load_permissions` when strict);
    the message names the folder and the problem. Unlike ``InvalidIdentity``, nothing
    here is a path trick: the file is just wrong, and its author can fix it.
    """

    def __init__(self, folder: str, problem: str) -> None:
        super().__init__(f"{folder}/{PERMISSION_FILE}: {problem}")
        self.folder = folder
        self.problem = problem


# --- paths -------------------------------------------------------------------------------


def _split_path(path: str | PurePosixPath, kind: str = "path") -> tuple[str, ...]:
    """Validate a store-relative POSIX path and return its segments.

    Refuse rather than normalise: a path that needs cleaning was built wrongly or is an
    attack, and either way it must not reach a filesystem or match a rule by accident.
    """
    if isinstance(path, PurePosixPath):
        path = str(path)
    if not isinstance(path, str):
        raise InvalidIdentity(f"{kind} must be a string, got {type(path).__name__}", path)
    if not path:
        raise InvalidIdentity(f"{kind} is empty", path)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise InvalidIdentity(f"{kind} {path!r} contains a control character", path)
    if "\\" in path:
        raise InvalidIdentity(f"{kind} {path!r} contains a backslash; use '/'", path)
    if path.startswith("/"):
        raise InvalidIdentity(f"{kind} {path!r} is absolute; give it relative to the root", path)
    parts = tuple(path.split("/"))
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidIdentity(f"{kind} {path!r} has an empty, '.' or '..' segment", path)
    return parts


def _owner_of(parts: tuple[str, ...]) -> str | None:
    """The datasite owner for a path under ``datasites/{email}``, else None."""
    if len(parts) >= 2 and parts[0] == _DATASITES:
        return validate_email(parts[1])
    return None


# --- globs -------------------------------------------------------------------------------

# A compiled pattern is a tuple of regex pieces; None stands for the user's email, which is
# escaped and spliced in at match time so that an email can never act as a glob.
_Pieces = tuple[str | None, ...]


def _class_end(segment: str, start: int) -> int:
    """Index just past the ``]`` closing the class opened at ``start``, or -1."""
    i = start + 1
    if i < len(segment) and segment[i] == "!":
        i += 1
    if i < len(segment) and segment[i] == "]":
        i += 1
    end = segment.find("]", i)
    return -1 if end == -1 else end + 1


def _translate_segment(segment: str) -> tuple[list[str | None], int, int, bool]:
    """Regex pieces for one segment, plus (literal chars, literal prefix, has wildcard)."""
    pieces: list[str | None] = []
    literal = 0
    prefix = 0
    wild = False
    i = 0
    while i < len(segment):
        if segment.startswith(_PLACEHOLDER, i):
            pieces.append(None)
            step = len(_PLACEHOLDER)
            literal += step
            prefix += 0 if wild else step
            i += step
            continue
        c = segment[i]
        if c == "*":
            pieces.append("[^/]*")
            wild = True
            i += 1
        elif c == "?":
            pieces.append("[^/]")
            wild = True
            i += 1
        elif c == "[" and (end := _class_end(segment, i)) != -1:
            body = segment[i + 1 : end - 1]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            pieces.append(f"(?!/)[{'^' if negate else ''}{body}]")
            wild = True
            i = end
        else:
            pieces.append(re.escape(c))
            literal += 1
            prefix += 0 if wild else 1
            i += 1
    return pieces, literal, prefix, wild


def _compile_pattern(pattern: str) -> tuple[_Pieces, tuple[int, int, int]]:
    """Translate a normalised glob into regex pieces and its specificity key.

    The key is (kind, literal prefix length, literal characters), larger = more specific;
    see the module docstring for why this order.
    """
    segments = pattern.split("/")
    collapsed: list[str] = []
    for seg in segments:  # "**/**" means the same as "**"
        if not (seg == "**" and collapsed and collapsed[-1] == "**"):
            collapsed.append(seg)
    pieces: list[str | None] = []
    literal = 0
    prefix = 0
    wild = False
    globstar = False
    last = len(collapsed) - 1
    for i, seg in enumerate(collapsed):
        if seg == "**":
            globstar = True
            wild = True
            if i < last:
                pieces.append("(?:.*/)?")
            elif pieces:
                pieces.pop()  # the "/" after the previous segment becomes optional
                pieces.append("(?:/.*)?")
            else:
                pieces.append(".*")
            continue
        seg_pieces, seg_literal, seg_prefix, seg_wild = _translate_segment(seg)
        pieces.extend(seg_pieces)
        literal += seg_literal
        prefix += 0 if wild else seg_prefix
        wild = wild or seg_wild
        if i < last:
            pieces.append("/")
            literal += 1
            prefix += 0 if wild else 1
    kind = 0 if globstar else (1 if wild else 2)
    return tuple(pieces), (kind, prefix, literal)


def _validate_pattern(pattern: object) -> str:
    """Return the pattern with SyftBox's placeholder spelling normalised, or raise ValueError."""
    if not isinstance(pattern, str):
        raise ValueError(f"pattern must be a string, got {type(pattern).__name__}")
    if not pattern:
        raise ValueError("pattern is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in pattern):
        raise ValueError(f"pattern {pattern!r} contains a control character")
    if "\\" in pattern:
        raise ValueError(f"pattern {pattern!r} contains a backslash; use '/'")
    if pattern.startswith("/"):
        raise ValueError(f"pattern {pattern!r} is absolute; write it relative to this folder")
    normal = pattern.replace(_SYFTBOX_PLACEHOLDER, _PLACEHOLDER)
    if "{{" in normal:
        raise ValueError(
            f"pattern {pattern!r} uses a template other than {_PLACEHOLDER} "
            f"(or {_SYFTBOX_PLACEHOLDER}); no other is supported"
        )
    if any(seg in ("", ".", "..") for seg in normal.split("/")):
        raise ValueError(f"pattern {pattern!r} has an empty, '.' or '..' segment")
    return normal


# --- values ------------------------------------------------------------------------------


def _validate_principal(entry: object) -> str:
    if isinstance(entry, str) and entry in (EVERYONE, REQUESTING_USER):
        return entry
    return validate_email(entry)


@dataclass(frozen=True, slots=True)
class Access:
    """Who holds each level under one rule: emails, ``"*"`` (everyone), ``"USER"``.

    Entries are validated on construction, so a typo in an email fails loudly instead of
    silently granting nothing.
    """

    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()
    admin: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for level in Level:
            value = getattr(self, level.value)
            if isinstance(value, str):
                raise ValueError(f"{level.value} must be a collection of users, not a string")
            object.__setattr__(self, level.value, frozenset(_validate_principal(v) for v in value))

    def grants(self, user: str, level: Level) -> bool:
        """True if ``user`` is listed (directly, as ``*`` or as ``USER``) at ``level`` or above."""
        for held in Level(level).implied_by:
            principals = getattr(self, held.value)
            if user in principals or EVERYONE in principals or REQUESTING_USER in principals:
                return True
        return False


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``pattern`` → ``access`` entry of a permission file.

    The pattern is relative to the folder holding the file; it is compiled once here.
    """

    pattern: str
    access: Access = field(default_factory=Access)
    _pieces: _Pieces = field(init=False, repr=False, compare=False)
    _key: tuple[int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pieces, key = _compile_pattern(_validate_pattern(self.pattern))
        object.__setattr__(self, "_pieces", pieces)
        object.__setattr__(self, "_key", key)

    @property
    def specificity(self) -> tuple[int, int, int]:
        """(kind, literal prefix, literal characters): larger sorts first within a file."""
        return self._key

    def matches(self, relative_path: str, user: str) -> bool:
        """Does the pattern, with ``{useremail}`` set to ``user``, match the relative path?"""
        regex = "".join(re.escape(user) if p is None else p for p in self._pieces)
        return re.fullmatch(regex, relative_path) is not None


@dataclass(frozen=True, slots=True)
class PermissionFile:
    """The parsed ``syft.pub.yaml`` of one folder (store-relative, e.g. ``datasites/a@x.org``).

    ``problem`` is set on a stand-in for a file that could not be read or parsed: it has no
    rules and is terminal, so an unreadable file denies everything below it to everyone but
    the owner, instead of silently handing the decision to a more permissive parent.
    """

    folder: str
    rules: tuple[Rule, ...] = ()
    terminal: bool = False
    problem: str | None = None
    _ordered: tuple[tuple[int, Rule], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = _split_path(self.folder, "folder")
        if _owner_of(parts) is None:
            raise ValueError(
                f"permission file folder {self.folder!r} is not inside datasites/{{email}}/"
            )
        object.__setattr__(self, "rules", tuple(self.rules))
        # Most specific first; among equal keys the rule written first stays first.
        ordered = sorted(
            enumerate(self.rules, start=1),
            key=lambda item: (tuple(-k for k in item[1].specificity), item[0]),
        )
        object.__setattr__(self, "_ordered", tuple(ordered))

    @classmethod
    def unreadable(cls, folder: str, problem: str) -> PermissionFile:
        """The fail-closed stand-in for a broken file (see the class docstring)."""
        return cls(folder=folder, rules=(), terminal=True, problem=problem)

    @property
    def path(self) -> str:
        """Store-relative path of the file itself."""
        return f"{self.folder}/{PERMISSION_FILE}"

    def by_specificity(self) -> Iterator[tuple[int, Rule]]:
        """(1-based position in the file, rule), most specific first."""
        return iter(self._ordered)


# --- parsing -----------------------------------------------------------------------------


def _parse_access(folder: str, where: str, raw: object) -> Access:
    if not isinstance(raw, Mapping):
        raise InvalidPermissionFile(
            folder, f"{where}: 'access' must be a mapping of read/write/admin to lists"
        )
    levels = {level.value for level in Level}
    lists: dict[str, frozenset[str]] = {}
    for name, users in raw.items():
        if name not in levels:
            raise InvalidPermissionFile(
                folder, f"{where}: unknown access level {name!r} (expected read, write, admin)"
            )
        if not isinstance(users, list):
            raise InvalidPermissionFile(
                folder,
                f"{where}: access {name!r} must be a list of users, got {type(users).__name__}"
                + (' (write [] for nobody, ["*"] for everyone)' if users is None else ""),
            )
        principals = []
        for user in users:
            try:
                principals.append(_validate_principal(user))
            except InvalidIdentity as exc:
                raise InvalidPermissionFile(
                    folder, f'{where}: access {name!r}: {exc} (or use "*" or "USER")'
                ) from exc
        lists[name] = frozenset(principals)
    return Access(**lists)


def _parse_rule(folder: str, index: int, raw: object) -> Rule:
    where = f"rule {index}"
    if not isinstance(raw, Mapping):
        raise InvalidPermissionFile(folder, f"{where} must be a mapping with pattern and access")
    unknown = set(raw) - {"pattern", "access"}
    if unknown:
        raise InvalidPermissionFile(
            folder,
            f"{where}: unknown key(s) {sorted(map(str, unknown))} (expected pattern, access)",
        )
    if "pattern" not in raw:
        raise InvalidPermissionFile(folder, f"{where}: missing 'pattern'")
    if "access" not in raw:
        raise InvalidPermissionFile(folder, f"{where}: missing 'access'")
    access = _parse_access(folder, where, raw["access"])
    try:
        return Rule(pattern=raw["pattern"], access=access)
    except ValueError as exc:
        raise InvalidPermissionFile(folder, f"{where}: {exc}") from exc


def parse_permission_file(text: str, folder: str) -> PermissionFile:
    """Parse the text of ``{folder}/syft.pub.yaml``; raise InvalidPermissionFile naming the problem.

    Strict on purpose: a misspelt key or level would otherwise be ignored and quietly
    change who can see data. An empty file is valid and holds no rules.
    """
    _split_path(folder, "folder")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidPermissionFile(folder, f"not valid YAML: {exc}") from exc
    if doc is None:
        return PermissionFile(folder=folder)
    if not isinstance(doc, Mapping):
        raise InvalidPermissionFile(
            folder, f"top level must be a mapping with 'rules', got {type(doc).__name__}"
        )
    unknown = set(doc) - {"terminal", "rules"}
    if unknown:
        raise InvalidPermissionFile(
            folder, f"unknown key(s) {sorted(map(str, unknown))} (expected terminal, rules)"
        )
    terminal = doc.get("terminal", False)
    if not isinstance(terminal, bool):
        raise InvalidPermissionFile(folder, f"'terminal' must be true or false, got {terminal!r}")
    raw_rules = doc.get("rules", [])
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, list):
        raise InvalidPermissionFile(
            folder, f"'rules' must be a list, got {type(raw_rules).__name__}"
        )
    rules = tuple(_parse_rule(folder, i, raw) for i, raw in enumerate(raw_rules, start=1))
    return PermissionFile(folder=folder, rules=rules, terminal=terminal)


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
        if level is Level.WRITE and parts[-1] == PERMISSION_FILE:
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


# --- loading -----------------------------------------------------------------------------


def _read_permission_file(path: Path, folder: str) -> PermissionFile:
    size = path.stat().st_size
    if size > MAX_PERMISSION_FILE_BYTES:
        raise InvalidPermissionFile(
            folder, f"is {size} bytes, more than the {MAX_PERMISSION_FILE_BYTES} allowed"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPermissionFile(folder, f"is not UTF-8 text: {exc}") from exc
    return parse_permission_file(text, folder)


def load_permissions(root: Path, *, strict: bool = False) -> PermissionSet:
    """Read every ``datasites/**/syft.pub.yaml`` under a store root into a PermissionSet.

    Symlinks are not followed (a link could point outside the store). A file that cannot
    be read or parsed raises InvalidPermissionFile when ``strict``; otherwise it is
    logged and replaced by a fail-closed stand-in (``PermissionFile.unreadable``), so one
    owner's typo does not stop a hub serving everybody else, nor open their data.
    Folders under ``datasites/`` that are not valid emails are skipped with a warning.
    """
    root = Path(root)
    base = root / _DATASITES
    if not base.is_dir():
        return PermissionSet()
    files: list[PermissionFile] = []
    for site in sorted(base.iterdir()):
        if not site.is_dir() or site.is_symlink():
            continue
        try:
            validate_email(site.name)
        except InvalidIdentity as exc:
            if strict:
                raise
            logger.warning("skipping %s: %s", site, exc)
            continue
        for dirpath, dirnames, filenames in os.walk(site):
            dirnames.sort()
            if PERMISSION_FILE in filenames:
                here = Path(dirpath)
                pfile = _load_one(here / PERMISSION_FILE, here.relative_to(root).as_posix(), strict)
                if pfile is not None:
                    files.append(pfile)
    return PermissionSet(files)


def _load_one(path: Path, folder: str, strict: bool) -> PermissionFile | None:
    """One file for load_permissions: parsed, a fail-closed stand-in, or None if skipped."""
    try:
        _split_path(folder, "folder")
    except InvalidIdentity as exc:
        if strict:
            raise
        logger.warning("skipping %s: %s", path, exc)
        return None
    try:
        if path.is_symlink():
            raise InvalidPermissionFile(folder, "is a symlink, which is not followed")
        return _read_permission_file(path, folder)
    except InvalidPermissionFile as exc:
        error = exc
    except OSError as exc:
        error = InvalidPermissionFile(folder, f"cannot be read: {exc}")
        error.__cause__ = exc
    if strict:
        raise error
    logger.warning("%s: %s; it denies all but the owner", path, error.problem)
    return PermissionFile.unreadable(folder, error.problem)
