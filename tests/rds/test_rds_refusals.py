"""Every refusal is on the record: a refused action that never moved the job (a run of a
job that is not approved, of an FL job, of a job whose data is gone or that another
process runs; a build of missing dependencies; results not shared; a package refused on
arrival) is a ``job_events`` row in the owner's audit log, as a refused state change is.
The owner's commands and daemon and the scientist are separate processes."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rds_processes import Person

import fedbox.errors
import fedbox.rds
from fedbox.rpc.audit import AuditLog

OWNER = "owner@hospital.org"
SCI = "sci@lab.org"


@pytest.fixture
def world(root: Path, tmp_path: Path, fedbox_home: Path) -> Iterator[dict]:
    owner = Person(root, OWNER, fedbox_home)
    sci = Person(root, SCI, fedbox_home)
    private, mock, code = tmp_path / "private", tmp_path / "mock", tmp_path / "code"
    for folder in (private, mock, code):
        folder.mkdir()
    (private / "rows.csv").write_text("a,40\n")
    (mock / "rows.csv").write_text("x,1\n")
    (code / "main.py").write_text("print('hello')\n")
    done = owner.run("dataset", "create", "visits", "--private", str(private), "--mock", str(mock))
    assert done.returncode == 0, done.stderr
    owner.serve()
    try:
        yield {"owner": owner, "sci": sci, "code": code, "root": root, "private": private}
    finally:
        owner.stop()


def _submit(world: dict, *extra: str) -> str:
    done = world["sci"].run(
        "job", "submit", str(world["code"]), "--to", OWNER, "--dataset", "visits", *extra
    )
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    world["owner"].received(job_id)
    return job_id


def _refusals(owner: Person, job_id: str) -> list[tuple[str, str, str]]:
    """(actor, action, reason) of the job's refusal rows, read from the audit log file."""
    log = AuditLog(owner.state_dir / "audit.db")
    try:
        events = log.job_events(job_id)
    finally:
        log.close()
    assert all(e.after is None for e in events if e.action.startswith("refused"))
    return [(e.actor, e.action, e.reason) for e in events if e.action.startswith("refused")]


def _refused(owner: Person, *args: str, local: bool = True) -> str:
    done = owner.run(*args, local=local)
    assert done.returncode == 2, done.stdout + done.stderr
    return done.stderr


def test_runs_refused_before_the_job_moves_are_audited(world: dict) -> None:
    owner = world["owner"]
    job_id = _submit(world)
    _refused(owner, "job", "run", job_id)
    owner.json("job", "approve", job_id, local=True)
    _refused(owner, "job", "run", job_id, "--with-deps")
    lock = os.open(owner.state_dir / "rds" / "jobs" / job_id / "run.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process runs it
        _refused(owner, "job", "run", job_id)
    finally:
        os.close(lock)
    shutil.rmtree(world["private"])
    _refused(owner, "job", "run", job_id)
    assert owner.received(job_id)["status"] == "approved"
    assert _refusals(owner, job_id) == [
        (OWNER, "refused run", f"job {job_id} is submitted; only an approved job runs"),
        (OWNER, "refused run", "--with-deps: the job has no requirements.txt"),
        (OWNER, "refused run", f"job {job_id} is being run by another process"),
        (OWNER, "refused run", f"the private data of 'visits' ({world['private']}) is gone"),
    ]


def test_a_run_of_a_deleted_dataset_is_audited(world: dict) -> None:
    owner = world["owner"]
    job_id = _submit(world)
    owner.json("job", "approve", job_id, local=True)
    assert owner.run("dataset", "delete", "visits").returncode == 0
    _refused(owner, "job", "run", job_id)
    _refused(owner, "job", "run", job_id, "--mock", local=False)
    [(actor, action, reason), mock] = _refusals(owner, job_id)
    assert (actor, action) == (OWNER, "refused run")
    assert reason.startswith(f"job {job_id} needs 'visits': ") and "no dataset" in reason
    assert mock == (OWNER, "refused run on the mock", f"{OWNER} has published no dataset 'visits'")


def test_scientist_side_refusals_are_audited(world: dict) -> None:
    owner, sci = world["owner"], world["sci"]
    job_id = _submit(world)
    with fedbox.rds.connect(world["root"], SCI, state_dir=sci.state_dir) as rds:
        [fl_job] = rds.submit_to_each(
            world["code"], [OWNER], dataset="visits", entry="python x.py", kind="fl"
        )
        [bad] = rds.submit_to_each(world["code"], [OWNER], dataset="nope")
        assert rds.job(job_id).status()["status"] == "submitted"
        with pytest.raises(fedbox.errors.RemoteError, match="403"):
            rds.job(job_id).results(world["code"] / "out", timeout=60)
        with pytest.raises(fedbox.errors.RemoteError, match="no dataset 'nope'"):
            rds.submission_answer(bad, 60)
    owner.received(fl_job.id)
    stderr = _refused(owner, "job", "run", fl_job.id)
    assert "FL job" in stderr
    assert _refusals(owner, job_id) == [
        (SCI, "refused results", f"job {job_id} is submitted, not shared")
    ]
    [(actor, action, reason)] = _refusals(owner, fl_job.id)
    assert (actor, action) == (OWNER, "refused run") and "is an FL job" in reason
    [(actor, action, reason)] = _refusals(owner, bad.id)
    assert (actor, action) == (SCI, "refused submit") and "no dataset 'nope'" in reason
    shown = owner.run("messages", "--jobs", local=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("refused") >= 3
