"""Tests for fedbox.datasite.permissions: the access table, parsing errors, loading."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fedbox.datasite.permissions import (
    PERMISSION_FILE,
    Access,
    InvalidPermissionFile,
    Level,
    PermissionFile,
    PermissionSet,
    Rule,
    parse_permission_file,
)
from fedbox.errors import InvalidIdentity, PermissionDenied
from fedbox.store.local_permissions import load_permissions

A = "datasites/alice@x.org"

# One datasite exercising every feature; the same texts are parsed in memory and written to
# disk for load_permissions, so both paths are checked against the same table.
FILES = {
    A: """
rules:
  - pattern: "**"
    access: {read: []}
  - pattern: "shared/**"
    access:
      read: [bob@x.org]
      write: [carol@x.org]
  - pattern: "shared/notes.txt"
    access: {read: []}
  - pattern: "shared/*.csv"
    access: {read: ["*"]}
  - pattern: "**/*.log"
    access: {admin: [dave@x.org]}
""",
    f"{A}/public": """
terminal: false
rules:
  - pattern: "**"
    access: {read: ["*"]}
  - pattern: "drafts/**"
    access: {read: [bob@x.org]}
""",
    f"{A}/public/deep": """
rules:
  - pattern: "only.txt"
    access: {read: [carol@x.org]}
""",
    f"{A}/private": """
terminal: true
rules:
  - pattern: "**"
    access: {read: [bob@x.org]}
""",
    f"{A}/private/inner": """
rules:
  - pattern: "**"
    access: {read: ["*"], write: ["*"]}
""",
    f"{A}/inbox": """
terminal: true
rules:
  - pattern: "{useremail}/*"
    access: {write: [USER]}
  - pattern: "{{.UserEmail}}_archive/**"
    access: {read: [USER]}
  - pattern: "**"
    access: {read: []}
""",
    f"{A}/admins": """
rules:
  - pattern: "**"
    access: {admin: [erin@x.org]}
  - pattern: "notes/**"
    access: {write: [frank@x.org]}
""",
}

CASES = [
    # the owner may do everything on their own datasite, whatever the files say
    ("alice@x.org", f"{A}/secret/x.bin", "admin", True),
    ("alice@x.org", f"{A}/private/inner/x.txt", "write", True),
    ("alice@x.org", f"{A}/syft.pub.yaml", "write", True),
    ("bob@x.org", "datasites/bob@x.org/anything/at/all", Level.ADMIN, True),
    # deny by default
    ("bob@x.org", f"{A}/secret/x.bin", "read", False),
    ("eve@x.org", "datasites/carol@x.org/a.txt", "read", False),
    ("bob@x.org", A, "read", False),
    ("bob@x.org", "syft_outbox_inbox_bob@x.org_to_alice@x.org/app/rpc/m/1.request", "write", False),
    # everyone reads public, across any depth, but may not write
    ("eve@x.org", f"{A}/public/index.html", "read", True),
    ("eve@x.org", f"{A}/public/sub/dir/a.txt", Level.READ, True),
    ("eve@x.org", f"{A}/public/index.html", "write", False),
    ("eve@x.org", f"{A}/public/drafts/d.md", "read", False),
    ("bob@x.org", f"{A}/public/drafts/d.md", "read", True),
    # a deeper file wins when one of its rules matches, else the shallower one decides
    ("eve@x.org", f"{A}/public/deep/other.txt", "read", True),
    ("eve@x.org", f"{A}/public/deep/only.txt", "read", False),
    ("carol@x.org", f"{A}/public/deep/only.txt", "read", True),
    # terminal: files below private/ are ignored
    ("bob@x.org", f"{A}/private/a.txt", "read", True),
    ("bob@x.org", f"{A}/private/a.txt", "write", False),
    ("eve@x.org", f"{A}/private/inner/a.txt", "read", False),
    ("eve@x.org", f"{A}/private/inner/a.txt", "write", False),
    ("bob@x.org", f"{A}/private/inner/a.txt", "read", True),
    # most specific rule within one file decides, without falling through
    ("bob@x.org", f"{A}/shared/report.pdf", "read", True),
    ("bob@x.org", f"{A}/shared/notes.txt", "read", False),
    ("eve@x.org", f"{A}/shared/data.csv", "read", True),
    ("eve@x.org", f"{A}/shared/sub/data.csv", "read", False),
    ("bob@x.org", f"{A}/shared/sub/data.csv", "read", True),
    ("dave@x.org", f"{A}/shared/a.log", "read", False),
    # ** spans any number of folders, including none
    ("dave@x.org", f"{A}/x/y/z.log", "admin", True),
    ("dave@x.org", f"{A}/z.log", "write", True),
    ("eve@x.org", f"{A}/x/y/z.log", "read", False),
    # levels imply each other: admin => write => read, never upwards
    ("carol@x.org", f"{A}/shared/report.pdf", "write", True),
    ("carol@x.org", f"{A}/shared/report.pdf", "read", True),
    ("carol@x.org", f"{A}/shared/report.pdf", "admin", False),
    ("bob@x.org", f"{A}/shared/report.pdf", "write", False),
    ("dave@x.org", f"{A}/x/y/z.log", "read", True),
    # USER with {useremail}: each user writes only into their own folder
    ("bob@x.org", f"{A}/inbox/bob@x.org/msg.json", "write", True),
    ("bob@x.org", f"{A}/inbox/bob@x.org/msg.json", "read", True),
    ("bob@x.org", f"{A}/inbox/bob@x.org/msg.json", "admin", False),
    ("bob@x.org", f"{A}/inbox/carol@x.org/msg.json", "write", False),
    ("bob@x.org", f"{A}/inbox/bob@x.org/sub/msg.json", "write", False),
    ("*@x.org", f"{A}/inbox/bob@x.org/msg.json", "write", False),
    ("bob@x.org", f"{A}/inbox/bobAx.org/msg.json", "write", False),
    ("bob@x.org", f"{A}/inbox/bob@x.org_archive/2024/old.json", "read", True),
    ("carol@x.org", f"{A}/inbox/bob@x.org_archive/2024/old.json", "read", False),
    # writing a permission file needs admin
    ("erin@x.org", f"{A}/admins/{PERMISSION_FILE}", "write", True),
    ("frank@x.org", f"{A}/admins/notes/a.txt", "write", True),
    ("frank@x.org", f"{A}/admins/notes/{PERMISSION_FILE}", "write", False),
    ("frank@x.org", f"{A}/admins/notes/{PERMISSION_FILE}", "read", True),
    ("erin@x.org", f"{A}/admins/notes/a.txt", "write", False),
    # ...whatever its letter case: on macOS SYFT.PUB.YAML is syft.pub.yaml (issue 11.14)
    ("frank@x.org", f"{A}/admins/notes/SYFT.PUB.YAML", "write", False),
    ("frank@x.org", f"{A}/admins/notes/Syft.Pub.Yaml", "write", False),
    ("erin@x.org", f"{A}/admins/SYFT.PUB.YAML", "write", True),
]


@pytest.fixture(scope="module")
def perms() -> PermissionSet:
    return PermissionSet({folder: parse_permission_file(t, folder) for folder, t in FILES.items()})


@pytest.mark.parametrize(("user", "path", "level", "expected"), CASES)
def test_allowed_table(
    perms: PermissionSet, user: str, path: str, level: str, expected: bool
) -> None:
    decision = perms.explain(user, path, level)
    assert decision.allowed is expected, str(decision)
    assert perms.allowed(user, path, level) is expected


@pytest.mark.parametrize(
    "path",
    [
        "/datasites/alice@x.org/a.txt",
        "datasites/alice@x.org/../bob@x.org/a.txt",
        "datasites/alice@x.org/public/..",
        "datasites/alice@x.org/./a.txt",
        "datasites//alice@x.org/a.txt",
        "datasites/alice@x.org/a.txt/",
        "datasites/alice@x.org/a\x00b.txt",
        "datasites/alice@x.org/a\nb.txt",
        "datasites\\alice@x.org\\a.txt",
        "",
        "datasites/not-an-email/a.txt",
        "datasites/..%2f@x.org/../a.txt",
    ],
)
def test_path_tricks_refused(perms: PermissionSet, path: str) -> None:
    with pytest.raises(InvalidIdentity):
        perms.allowed("bob@x.org", path, "read")


@pytest.mark.parametrize(
    "user", ["not-an-email", "", "../x@y.org", "a/b@x.org", "a_to_b@x.org", "b@x.org\x00", None]
)
def test_bad_user_refused(perms: PermissionSet, user: str) -> None:
    with pytest.raises(InvalidIdentity):
        perms.allowed(user, f"{A}/public/index.html", "read")


def test_unknown_level_is_misuse(perms: PermissionSet) -> None:
    with pytest.raises(ValueError):
        perms.allowed("bob@x.org", f"{A}/public/index.html", "execute")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("rule: []\n", "unknown key(s) ['rule']"),
        ("rules: {}\n", "'rules' must be a list"),
        ("terminal: maybe\nrules: []\n", "'terminal' must be true or false"),
        ("rules:\n  - just a string\n", "rule 1 must be a mapping"),
        ("rules:\n  - access: {read: ['*']}\n", "rule 1: missing 'pattern'"),
        ("rules:\n  - pattern: '**'\n", "rule 1: missing 'access'"),
        ("rules:\n  - pattern: '**'\n    acces: {}\n", "unknown key(s) ['acces']"),
        ("rules:\n  - pattern: '**'\n    access: [read]\n", "'access' must be a mapping"),
        ("rules:\n  - pattern: '**'\n    access: {execute: ['*']}\n", "unknown access level"),
        ("rules:\n  - pattern: '**'\n    access: {read: '*'}\n", "must be a list of users"),
        ("rules:\n  - pattern: '**'\n    access: {read: }\n", "write [] for nobody"),
        ("rules:\n  - pattern: '**'\n    access: {read: [bob]}\n", "not a valid email"),
        (
            "rules:\n  - pattern: '*'\n    access: {}\n  - pattern: 5\n    access: {}\n",
            "rule 2: pattern must be a string",
        ),
        ("rules:\n  - pattern: '../up/**'\n    access: {}\n", "'..' segment"),
        ("rules:\n  - pattern: '/abs/**'\n    access: {}\n", "absolute"),
        ("rules:\n  - pattern: '{{.Year}}/**'\n    access: {}\n", "template"),
        ("rules:\n  - pattern: 'data/[z-a].csv'\n    access: {}\n", "range z-a is backwards"),
    ],
)
def test_malformed_file_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidPermissionFile) as info:
        parse_permission_file(text, f"{A}/public")
    assert message in str(info.value)
    assert str(info.value).startswith(f"{A}/public/{PERMISSION_FILE}: ")
    assert info.value.folder == f"{A}/public"


def test_empty_file_has_no_rules() -> None:
    pfile = parse_permission_file("", A)
    assert pfile.rules == ()
    assert not pfile.terminal


def test_rules_sorted_by_specificity() -> None:
    patterns = ["**", "**/*.csv", "public/**", "*.csv", "public/*.csv", "public/data.csv", "p?"]
    pfile = PermissionFile(folder=A, rules=tuple(Rule(p) for p in patterns))
    ordered = [rule.pattern for _, rule in pfile.by_specificity()]
    assert ordered == [
        "public/data.csv",
        "public/*.csv",
        "p?",
        "*.csv",
        "public/**",
        "**/*.csv",
        "**",
    ]


def test_equal_specificity_keeps_file_order() -> None:
    text = """
rules:
  - pattern: "*.txt"
    access: {read: [bob@x.org]}
  - pattern: "?.txt"
    access: {read: [carol@x.org]}
"""
    pset = PermissionSet([parse_permission_file(text, A)])
    assert Rule("*.txt").specificity == Rule("?.txt").specificity
    assert pset.explain("bob@x.org", f"{A}/a.txt", "read").rule_index == 1
    assert not pset.allowed("carol@x.org", f"{A}/a.txt", "read")


def test_explain_names_the_deciding_rule(perms: PermissionSet) -> None:
    decision = perms.explain("bob@x.org", f"{A}/shared/notes.txt", "read")
    assert not decision.allowed
    assert decision.file == f"{A}/{PERMISSION_FILE}"
    assert decision.rule_index == 3
    assert decision.rule is not None
    assert decision.rule.pattern == "shared/notes.txt"
    assert "'shared/notes.txt'" in decision.reason

    elevated = perms.explain("frank@x.org", f"{A}/admins/notes/{PERMISSION_FILE}", "write")
    assert elevated.level is Level.WRITE
    assert elevated.needed is Level.ADMIN
    assert "needs admin" in elevated.reason

    owner = perms.explain("alice@x.org", f"{A}/x", "admin")
    assert owner.allowed
    assert owner.rule is None


def test_check_raises_permission_denied(perms: PermissionSet) -> None:
    assert perms.check("eve@x.org", f"{A}/public/a.txt", "read").allowed
    with pytest.raises(PermissionDenied) as info:
        perms.check("eve@x.org", f"{A}/secret.txt", "read")
    assert info.value.path == f"{A}/secret.txt"
    assert "denied" in str(info.value)
    assert isinstance(info.value, PermissionError)


def test_with_and_without_file(perms: PermissionSet) -> None:
    path = f"{A}/public/index.html"
    closed = perms.with_file(parse_permission_file("rules: []\nterminal: true\n", f"{A}/public"))
    assert perms.allowed("eve@x.org", path, "read")
    assert not closed.allowed("eve@x.org", path, "read")
    assert closed.without_file(f"{A}/public").files.keys() == perms.files.keys() - {f"{A}/public"}


def test_access_validates_entries() -> None:
    assert Access(read=["*", "USER", "bob@x.org"]).grants("eve@x.org", Level.READ)
    with pytest.raises(InvalidIdentity):
        Access(read=["bob"])
    with pytest.raises(ValueError, match="not a string"):
        Access(read="bob@x.org")  # type: ignore[arg-type]


def test_permission_set_rejects_mismatched_folder() -> None:
    with pytest.raises(ValueError, match="does not match the file's folder"):
        PermissionSet({f"{A}/other": PermissionFile(folder=A)})


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for folder, text in files.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / PERMISSION_FILE).write_text(text, encoding="utf-8")


def test_load_permissions_from_disk(tmp_path: Path) -> None:
    _write_tree(tmp_path, FILES)
    (tmp_path / A / "public" / "index.html").write_text("hi")
    loaded = load_permissions(tmp_path)
    assert set(loaded.files) == set(FILES)
    for user, path, level, expected in CASES:
        assert loaded.allowed(user, path, level) is expected, (user, path, level)


def test_load_broken_file_fails_closed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_tree(tmp_path, FILES)
    (tmp_path / A / "public" / "deep" / PERMISSION_FILE).write_text("rules: [\n")
    with caplog.at_level(logging.WARNING, logger="fedbox.datasite.permissions"):
        loaded = load_permissions(tmp_path)
    assert "not valid YAML" in caplog.text
    # Without the broken file eve could read public/deep/other.txt via public/**.
    decision = loaded.explain("eve@x.org", f"{A}/public/deep/other.txt", "read")
    assert not decision.allowed
    assert "unreadable" in decision.reason
    assert loaded.allowed("alice@x.org", f"{A}/public/deep/other.txt", "write")
    assert loaded.allowed("eve@x.org", f"{A}/public/index.html", "read")

    with pytest.raises(InvalidPermissionFile, match="not valid YAML"):
        load_permissions(tmp_path, strict=True)


def test_load_skips_non_email_folders_and_symlinks(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"datasites/not-an-email/x": "rules: []\n"})
    outside = tmp_path / "outside.yaml"
    outside.write_text("rules:\n  - pattern: '**'\n    access: {read: ['*']}\n")
    site = tmp_path / A / "linked"
    site.mkdir(parents=True)
    (site / PERMISSION_FILE).symlink_to(outside)
    loaded = load_permissions(tmp_path)
    assert set(loaded.files) == {f"{A}/linked"}
    assert loaded.files[f"{A}/linked"].problem is not None
    assert not loaded.allowed("eve@x.org", f"{A}/linked/a.txt", "read")
    assert len(load_permissions(tmp_path / "missing")) == 0
