"""Dataset-level auto-approval (``fedbox dataset create --auto-approve EMAIL``): the
owner's daemon approves a trusted sender's code jobs on that dataset, by the envelope's
authenticated sender only, and does nothing more (no run, no share, no FL job).
The owner, the trusted scientist and an impostor are separate processes with their own
state dirs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rds_processes import Person, store_bytes

import fedbox.rds
from fedbox.rpc.audit import AuditLog

OWNER = "owner@hospital.org"
SCI = "sci@lab.org"
IMPOSTOR = "mallory@lab.org"


@pytest.fixture
def world(root: Path, tmp_path: Path, fedbox_home: Path) -> Iterator[dict]:
    owner = Person(root, OWNER, fedbox_home)
    private, mock, code = tmp_path / "private", tmp_path / "mock", tmp_path / "code"
    for folder in (private, mock, code):
        folder.mkdir()
    (private / "rows.csv").write_text("a,40\n")
    (mock / "rows.csv").write_text("x,1\n")
    (code / "main.py").write_text("print('hello')\n")
    created = owner.run(
        "dataset",
        "create",
        "visits",
        "--private",
        str(private),
        "--mock",
        str(mock),
        "--auto-approve",
        SCI,
    )
    assert created.returncode == 0, created.stderr
    owner.serve()
    try:
        yield {"owner": owner, "code": code, "root": root, "home": fedbox_home, "out": created}
    finally:
        owner.stop()


def _answer(
    world: dict,
    email: str,
    *,
    name: str | None = None,
    kind: Literal["code", "fl"] = "code",
    entry: str = "python main.py",
) -> dict:
    """Submit as ``email`` (its own state dir) and return the owner's answer to the
    submission: the job as the daemon left it after applying its rules."""
    person = Person(world["root"], email, world["home"])
    with fedbox.rds.connect(world["root"], email, state_dir=person.state_dir) as rds:
        [job] = rds.submit_to_each(
            world["code"], [OWNER], dataset="visits", entry=entry, name=name, kind=kind
        )
        return rds.submission_answer(job, 60)


def _events(owner: Person, job_id: str) -> list[tuple[str, str, str | None, str]]:
    log = AuditLog(owner.state_dir / "audit.db")
    try:
        return [(e.actor, e.action, e.after, e.reason) for e in log.job_events(job_id)]
    finally:
        log.close()


def test_the_trusted_senders_job_is_approved_unattended_and_not_run(world: dict) -> None:
    owner = world["owner"]
    answer = _answer(world, SCI)
    assert answer["status"] == "approved"
    time.sleep(1.5)  # a run, had one been started, would have moved it by now
    job = owner.received(answer["id"])
    assert job["status"] == "approved"
    assert not (owner.state_dir / "rds" / "jobs" / job["id"] / "output").exists()
    actor = f"rule:{SCI}:dataset:visits"
    reason = f"dataset rule: approve {SCI}'s code jobs on visits; package sha256 "
    assert _events(owner, job["id"]) == [
        (SCI, "submit", "submitted", ""),
        (actor, "approved", "approved", reason + answer["package_sha256"]),
    ]
    assert len(answer["package_sha256"]) == 64
    ran = owner.json("job", "run", job["id"], local=True)  # the owner still runs it
    assert ran["status"] == "finished"


def test_another_authenticated_sender_is_not_approved(world: dict) -> None:
    answer = _answer(world, IMPOSTOR)
    assert answer["status"] == "submitted"
    assert world["owner"].received(answer["id"])["submitter"] == IMPOSTOR


def test_a_sender_field_written_into_the_package_is_ignored(world: dict) -> None:
    code = world["code"]
    (code / "submitter.json").write_text(json.dumps({"submitter": SCI, "sender": SCI}))
    answer = _answer(world, IMPOSTOR, name="from-sci-lab-org")
    job = world["owner"].received(answer["id"])
    assert (answer["status"], job["submitter"]) == ("submitted", IMPOSTOR)


def test_an_fl_job_from_the_trusted_sender_is_not_approved(world: dict) -> None:
    answer = _answer(world, SCI, kind="fl", entry="python -m fedbox.fl.piped_client .")
    assert answer["status"] == "submitted"
    review = world["owner"].json("job", "review", answer["id"], local=True)
    assert review["manifest"]["kind"] == "fl"
    assert "FL jobs still need your approval" in " ".join(world["out"].stdout.split())


def test_the_rule_is_shown_to_the_owner_only_and_never_published(world: dict) -> None:
    owner = world["owner"]
    mine = owner.json("dataset", "show", "visits", "--datasite", OWNER)
    assert mine["auto_approve"] == [SCI]
    public = owner.json("dataset", "show", "visits", "--datasite", OWNER, anyone=True)
    assert "auto_approve" not in public
    assert SCI.encode() not in store_bytes(world["root"])


def test_a_bad_email_is_refused_and_nothing_is_published(
    root: Path, tmp_path: Path, fedbox_home: Path
) -> None:
    owner = Person(root, OWNER, fedbox_home)
    for name in ("private", "mock"):
        (tmp_path / name).mkdir()
    done = owner.run(
        "dataset",
        "create",
        "d",
        "--private",
        str(tmp_path / "private"),
        "--mock",
        str(tmp_path / "mock"),
        "--auto-approve",
        "not-an-email",
    )
    assert done.returncode == 2 and "not-an-email" in done.stderr
    assert owner.json("dataset", "list", anyone=True) == []
