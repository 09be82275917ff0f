"""Bad input to the rds commands: one clear line on stderr, exit 2, nothing changed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rds_processes import Person

import fedbox.rds
from fedbox.rds.package import pack

OWNER = "owner@x.org"


@pytest.fixture
def owner(root: Path, fedbox_home: Path, tmp_path: Path) -> Person:
    person = Person(root, OWNER, fedbox_home)
    for name in ("private", "mock", "code"):
        (tmp_path / name).mkdir()
    (tmp_path / "code" / "main.py").write_text("print(1)\n")
    done = person.run(
        "dataset",
        "create",
        "d",
        "--private",
        str(tmp_path / "private"),
        "--mock",
        str(tmp_path / "mock"),
    )
    assert done.returncode == 0, done.stderr
    return person


@pytest.mark.parametrize(
    ("args", "local", "message"),
    [
        (
            ("dataset", "create", "d", "--private", "{tmp}/private", "--mock", "{tmp}/mock"),
            False,
            "exists",
        ),
        (
            ("dataset", "create", "e", "--private", "{tmp}/absent", "--mock", "{tmp}/mock"),
            False,
            "is not a folder",
        ),
        (
            (
                "dataset",
                "create",
                "e",
                "--private",
                "{tmp}/private",
                "--mock",
                "{tmp}/mock",
                "--description",
                "{tmp}/absent.md",
            ),
            False,
            "absent.md",
        ),
        (("dataset", "delete", "nope"), False, "no dataset 'nope'"),
        (("job", "approve", "0123abcd"), True, "has no job '0123abcd'"),
        (("job", "reject", "0123abcd", "--reason", "x"), True, "has no job"),
        (("job", "review", "0123abcd"), True, "has no job"),
        (("job", "run", "0123abcd", "--mock"), True, "--mock needs --root"),
        (("job", "allow", "--submitter", "a@x.org", "--package", "abc"), True, "package_sha256"),
        (
            ("job", "submit", "{tmp}/absent", "--to", OWNER, "--dataset", "d"),
            False,
            "is not a folder",
        ),
        (
            ("job", "submit", "{tmp}/code", "--to", OWNER, "--dataset", "../d"),
            False,
            "dataset name",
        ),
        (("job", "status", "0123abcd"), False, "submitted no job"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    owner: Person, tmp_path: Path, args: tuple[str, ...], local: bool, message: str
) -> None:
    done = owner.run(*(a.format(tmp=tmp_path) for a in args), local=local)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_wrong_transition_names_the_states(owner: Person, tmp_path: Path) -> None:
    with fedbox.rds.connect(owner.root, OWNER, state_dir=owner.state_dir) as rds:
        data, _ = pack(tmp_path / "code", entry="python main.py", dataset="d")
        job = rds.owner.receive("00000000-0000-4000-8000-0000000000c1", "sci@x.org", data)
    done = owner.run("job", "share", job.id, local=True)
    assert done.returncode == 2
    assert "a submitted job cannot become shared" in done.stderr
