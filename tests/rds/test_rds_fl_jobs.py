"""FL projects as jobs: one `fedbox job submit-fl`, one approval per owner, the client
role run by each owner's daemon in the sandbox, the aggregator on the scientist's side.
Owners and scientist are separate processes with separate state dirs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rds_processes import Person

import fedbox.fl
import fedbox.rds
from fedbox.rds import JobState
from fedbox.rds.sandbox import isolation_available

APP = Path(__file__).parent / "fl_probe"
SCI = "sci@lab.org"
OWNERS = {"a@one.org": 3, "b@two.org": 5, "c@three.org": 100}


@pytest.fixture
def owners(root: Path, tmp_path: Path, fedbox_home: Path) -> Iterator[dict[str, Person]]:
    people = {}
    try:
        for email, value in OWNERS.items():
            owner = Person(root, email, fedbox_home)
            private, mock = tmp_path / email / "private", tmp_path / email / "mock"
            private.mkdir(parents=True)
            mock.mkdir(parents=True)
            (private / "value.txt").write_text(f"{value}\n")
            (mock / "value.txt").write_text("0\n")
            done = owner.run(
                "dataset", "create", "numbers", "--private", str(private), "--mock", str(mock)
            )
            assert done.returncode == 0, done.stderr
            owner.serve()
            people[email] = owner
        yield people
    finally:
        for owner in people.values():
            owner.stop()


def _submit_fl(sci: Person, out: Path, *extra: str) -> subprocess.Popen[str]:
    args = sci._args("job", "submit-fl", str(APP), "--dataset", "numbers", *extra)
    return subprocess.Popen(
        [sys.executable, "-m", "fedbox", *args, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _job_of(owner: Person, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = owner.json("job", "list", local=True)["received"]
        if received:
            return received[0]
        time.sleep(0.3)
    raise AssertionError(f"{owner.email} never received the FL job")


def _until_status(owner: Person, job_id: str, states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in owner.json("job", "list", local=True)["received"]:
            if job["id"] == job_id and job["status"] in states:
                return job
        time.sleep(0.3)
    raise AssertionError(f"{owner.email}'s job {job_id} never became one of {states}")


def test_two_approve_one_rejects_run_completes_with_the_two(
    owners: dict[str, Person], root: Path, tmp_path: Path, fedbox_home: Path
) -> None:
    a, b, c = owners.values()
    sci = Person(root, SCI, fedbox_home)
    out = tmp_path / "results"
    probe = f"probe-path='{a.state_dir}'"
    proc = _submit_fl(
        sci,
        out,
        *(f"--datasite={o}" for o in owners),
        "--min-approved",
        "2",
        "--run-config",
        probe,
    )
    try:
        jobs = {o.email: _job_of(o) for o in owners.values()}
        assert {j["status"] for j in jobs.values()} == {"submitted"}
        review = a.json("job", "review", jobs[a.email]["id"], local=True)
        assert review["manifest"]["kind"] == "fl"
        assert "fedbox-fl.json" in {f["path"] for f in review["manifest"]["files"]}
        assert (
            c.run("job", "reject", jobs[c.email]["id"], "--reason", "no", local=True).returncode
            == 0
        )
        time.sleep(2)  # the scientist sees the rejection and one approval is not enough
        assert a.run("job", "approve", jobs[a.email]["id"], local=True).returncode == 0
        time.sleep(2)
        assert proc.poll() is None, "the aggregator must wait for a second approval"
        assert b.run("job", "approve", jobs[b.email]["id"], local=True).returncode == 0
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "c@three.org: rejected" in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] is True
    assert sorted(metrics["datasites"]) == ["a@one.org", "b@two.org"]
    train = [p for p in metrics["phases"] if p["message_type"] == "train"]
    assert len(train) == 2 and all(p["replied"] == 2 for p in train)
    last = train[-1]["metrics"]
    assert last["data-value"] == 4.0  # (3 + 5) / 2: each client read its owner's private data
    assert last["rounds-seen"] == 2.0  # one Context per (run, node), kept across messages
    assert last["leaked-env"] == 0.0  # a clean environment, not the daemon's
    if isolation_available() == "bubblewrap":
        assert last["sees-state"] == 0.0  # the owner's state dir (keys) is not in its view
    for owner in (a, b):
        job = _until_status(owner, jobs[owner.email]["id"], {"finished", "failed"})
        assert job["status"] == "finished", job
        logs = owner.state_dir / "rds" / "jobs" / job["id"] / "logs" / "stderr.txt"
        assert "probe client trained round 2" in logs.read_text()
    assert _until_status(c, jobs[c.email]["id"], {"rejected"})
    app_name = f"fl-{jobs[a.email]['package_sha256'][:24]}"
    assert jobs[a.email]["package_sha256"] == jobs[c.email]["package_sha256"]
    run_paths = [str(p.relative_to(root)) for p in root.rglob("*") if app_name in str(p)]
    for owner in (a, b):
        assert any(p.startswith(f"syft_outbox_inbox_{SCI}_to_{owner.email}/") for p in run_paths)
    assert not [p for p in run_paths if c.email in p], "a rejecting owner never gets messages"


def test_too_few_approvals_is_a_clear_error(
    owners: dict[str, Person], root: Path, tmp_path: Path, fedbox_home: Path
) -> None:
    a, b, _ = owners.values()
    sci = Person(root, SCI, fedbox_home)
    proc = _submit_fl(sci, tmp_path / "results", f"--datasite={a.email}", f"--datasite={b.email}")
    try:
        job = _job_of(a)
        assert (
            a.run("job", "reject", job["id"], "--reason", "not today", local=True).returncode == 0
        )
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "can still approve" in output and "a@one.org" in output, output
    assert not (tmp_path / "results" / "metrics.json").exists()


def _log_of(owner: Person, job_id: str) -> Path:
    return owner.state_dir / "rds" / "jobs" / job_id / "logs" / "stderr.txt"


def test_python_api_and_a_late_approver_joins_the_rounds_still_to_come(
    owners: dict[str, Person], root: Path, tmp_path: Path, fedbox_home: Path
) -> None:
    a, b, _ = owners.values()
    sci = Person(root, SCI, fedbox_home)
    late: list[subprocess.CompletedProcess[str]] = []
    with fedbox.rds.connect(root, SCI, state_dir=sci.state_dir) as rds:
        run = fedbox.fl.submit_fl(
            rds,
            APP,
            dataset="numbers",
            datasites=[a.email, b.email],
            min_approved=1,
            run_config={"num-server-rounds": 8, "round-pause": 2.0},
            out=tmp_path / "api",
        )
        jobs = {o.email: _job_of(o) for o in (a, b)}
        assert {o: s.state for o, s in run.status().items()} == {
            a.email: JobState.SUBMITTED,
            b.email: JobState.SUBMITTED,
        }
        assert a.run("job", "approve", jobs[a.email]["id"], local=True).returncode == 0

        def approve_b_once_a_trains() -> None:
            log = _log_of(a, jobs[a.email]["id"])
            deadline = time.monotonic() + 180
            while not (log.exists() and "trained round 1" in log.read_text()):
                assert time.monotonic() < deadline, "a never trained"
                time.sleep(0.2)
            late.append(b.run("job", "approve", jobs[b.email]["id"], local=True))

        approver = threading.Thread(target=approve_b_once_a_trains)
        approver.start()
        try:
            outcome = run.wait(approval_timeout=120, join_timeout=120)
        finally:
            approver.join()
        assert late[0].returncode == 0, late[0].stderr
        assert outcome.finished, outcome.error
        metrics = run.metrics()
    assert metrics["invited"] == [a.email, b.email]
    assert metrics["datasites"] == [a.email, b.email]
    replied = [p["replied"] for p in metrics["phases"] if p["message_type"] == "train"]
    assert replied[0] == 1 and replied[-1] == 2, replied  # b joined a later round
    assert metrics["phases"][-1]["metrics"]["data-value"] == 4.0
    for owner in (a, b):
        job = _until_status(owner, jobs[owner.email]["id"], {"finished", "failed"})
        assert job["status"] == "finished", job
    assert "probe client trained round 1" in _log_of(b, jobs[b.email]["id"]).read_text()


def test_an_owner_approving_after_the_run_ended_stops_at_once(
    owners: dict[str, Person], root: Path, tmp_path: Path, fedbox_home: Path
) -> None:
    a, b, _ = owners.values()
    sci = Person(root, SCI, fedbox_home)
    with fedbox.rds.connect(root, SCI, state_dir=sci.state_dir) as rds:
        run = fedbox.fl.submit_fl(
            rds,
            APP,
            dataset="numbers",
            datasites=[a.email, b.email],
            min_approved=1,
            run_config={"num-server-rounds": 1},
            out=tmp_path / "api",
        )
        jobs = {o.email: _job_of(o) for o in (a, b)}
        assert a.run("job", "approve", jobs[a.email]["id"], local=True).returncode == 0
        outcome = run.wait(approval_timeout=120, join_timeout=120)
        assert outcome.finished, outcome.error
    assert run.metrics()["datasites"] == [a.email]
    assert b.run("job", "approve", jobs[b.email]["id"], local=True).returncode == 0
    job = _until_status(b, jobs[b.email]["id"], {"finished", "failed"}, timeout=180)
    assert job["status"] == "finished", job  # its client found the stop, not its timeout
    assert "trained" not in _log_of(b, jobs[b.email]["id"]).read_text()
