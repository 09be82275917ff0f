"""Permission files: the values of a ``syft.pub.yaml`` (levels, access lists, rules) and its parser.

What the rules mean when deciding an access is in :mod:`fedbox.datasite.permissions`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath

import yaml

from fedbox.datasite.globs import Glob, compile_pattern, validate_pattern
from fedbox.datasite.identity import validate_email
from fedbox.datasite.paths import split_store_path
from fedbox.errors import PERMISSION_FILE, InvalidIdentity, InvalidPermissionFile

__all__ = [
    "DATASITES",
    "EVERYONE",
    "PERMISSION_FILE",
    "PUBLIC_READ",
    "REQUESTING_USER",
    "Access",
    "InvalidPermissionFile",
    "Level",
    "PermissionFile",
    "Rule",
    "is_permission_file",
    "owner_of",
    "parse_permission_file",
    "split_path",
]


EVERYONE = "*"
"""In an access list: every user."""

REQUESTING_USER = "USER"
"""In an access list: the user asking, whoever that is (pair it with ``{useremail}``)."""

PUBLIC_READ = 'rules:\n  - pattern: "**"\n    access:\n      read: ["*"]\n'
"""A permission file letting everyone read its folder (published keys, datasets)."""

DATASITES = "datasites"
"""The top folder of a store; each owner's datasite is ``datasites/{email}``."""


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


# --- paths -------------------------------------------------------------------------------


def is_permission_file(name: str) -> bool:
    """Is a file of this name a permission file? Compared case-insensitively: on a
    case-insensitive filesystem (macOS, Windows) ``SYFT.PUB.YAML`` *is* ``syft.pub.yaml``,
    so writing it must need admin too (issue 11, point 14)."""
    return name.casefold() == PERMISSION_FILE


def split_path(path: str | PurePosixPath, kind: str = "path") -> tuple[str, ...]:
    """Validate a store-relative POSIX path and return its segments (the store's rule)."""
    return split_store_path(path, kind)


def owner_of(parts: tuple[str, ...]) -> str | None:
    """The datasite owner for a path under ``datasites/{email}``, else None."""
    if len(parts) >= 2 and parts[0] == DATASITES:
        return validate_email(parts[1])
    return None


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
    _glob: Glob = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_glob", compile_pattern(validate_pattern(self.pattern)))

    @property
    def specificity(self) -> tuple[int, int, int]:
        """(kind, literal prefix, literal characters): larger sorts first within a file."""
        return self._glob.specificity

    def matches(self, relative_path: str, user: str) -> bool:
        """Does the pattern, with ``{useremail}`` set to ``user``, match the relative path?

        Linear in the path for a given pattern (see :mod:`fedbox.datasite.globs`)."""
        return self._glob.matches(relative_path, user)


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
        parts = split_path(self.folder, "folder")
        if owner_of(parts) is None:
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


MAX_YAML_DEPTH = 32
"""Collections nested deeper than this mean a broken or hostile file (a rule needs 4)."""
MAX_YAML_VALUES = 10_000
"""Values (scalars, collections, aliases) a permission file may hold: each costs the
pure-Python YAML loader hundreds of bytes, so 1 MiB of ``[a,a,a,...`` would take ~300 MB."""


class _Unbounded(yaml.YAMLError):
    """The document is nested too deeply or holds too many values to be loaded."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that stops composing a document beyond MAX_YAML_DEPTH levels (its
    composer recurses per level: deeper would be a RecursionError) or MAX_YAML_VALUES
    values, aliases included: memory and time stay bounded whatever the file holds."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._values = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        self._values += 1
        if self._values > MAX_YAML_VALUES:
            raise _Unbounded(f"holds more than {MAX_YAML_VALUES} YAML values")
        if self._depth >= MAX_YAML_DEPTH:
            raise _Unbounded(f"is nested more than {MAX_YAML_DEPTH} levels deep")
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1


def _load_yaml(text: str) -> object:
    loader = _BoundedLoader(text)  # reads the text: a control character is a YAMLError here
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_permission_file(text: str, folder: str) -> PermissionFile:
    """Parse the text of ``{folder}/syft.pub.yaml``; raise InvalidPermissionFile naming the problem.

    Strict on purpose: a misspelt key or level would otherwise be ignored and quietly
    change who can see data. An empty file is valid and holds no rules.
    """
    split_path(folder, "folder")
    try:
        doc = _load_yaml(text)
    except _Unbounded as exc:
        raise InvalidPermissionFile(folder, str(exc)) from None
    except yaml.YAMLError as exc:
        raise InvalidPermissionFile(folder, f"not valid YAML: {exc}") from exc
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
        # PyYAML's constructors raise these, not a YAMLError, for a value its tag or form
        # cannot make (`!!int x`, `!!bool x`, `!!timestamp x`, the date 2001-02-30).
        raise InvalidPermissionFile(
            folder, f"not valid YAML: a value is not what its tag or form says ({exc})"
        ) from exc
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
        raise InvalidPermissionFile(
            folder, f"'terminal' must be true or false, got {type(terminal).__name__}"
        )
    raw_rules = doc.get("rules", [])
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, list):
        raise InvalidPermissionFile(
            folder, f"'rules' must be a list, got {type(raw_rules).__name__}"
        )
    rules = tuple(_parse_rule(folder, i, raw) for i, raw in enumerate(raw_rules, start=1))
    return PermissionFile(folder=folder, rules=rules, terminal=terminal)
