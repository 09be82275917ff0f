"""The whole flow with an owner daemon and scientists in separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rds_processes import Person, store_bytes

import fedbox.rds
from fedbox.rds import JobState
from fedbox.rpc.audit import AuditLog

OWNER = "owner@hospital.org"
SCI = "sci@lab.org"
MARKER = "STDERR-MARKER-5b1e9"
PRIVATE_ROW = "patient-0042"
FORGED = ("approve", "run", "share", "update")

SUM = """\
import os, pathlib
rows = (pathlib.Path(os.environ["DATA_DIR"]) / "rows.csv").read_text().split()
total = sum(int(r.split(",")[1]) for r in rows)
pathlib.Path(os.environ["OUTPUT_DIR"], "total.txt").write_text(f"{total}\\n")
print("summed", len(rows), "rows")
"""


@pytest.fixture
def world(root: Path, tmp_path: Path, fedbox_home: Path) -> Iterator[dict]:
    owner = Person(root, OWNER, fedbox_home)
    sci = Person(root, SCI, fedbox_home)
    private, mock, code = tmp_path / "private", tmp_path / "mock", tmp_path / "summer"
    for folder in (private, mock, code):
        folder.mkdir()
    (private / "rows.csv").write_text(f"{PRIVATE_ROW},40\nb,2\n")
    (mock / "rows.csv").write_text("x,1\ny,1\n")
    (code / "main.py").write_text(SUM)
    done = owner.run("dataset", "create", "visits", "--private", str(private), "--mock", str(mock))
    assert done.returncode == 0, done.stderr
    owner.serve()
    try:
        yield {"owner": owner, "sci": sci, "code": code, "root": root, "tmp": tmp_path}
    finally:
        owner.stop()


def _audited(person: Person, job_id: str) -> list[tuple[str, str, str | None, str]]:
    """(actor, action, to-state, reason) of the job's rows in ``person``'s audit log, read
    from the file by this process, not from the daemon that wrote them."""
    log = AuditLog(person.state_dir / "audit.db")
    try:
        return [(e.actor, e.action, e.after, e.reason) for e in log.job_events(job_id)]
    finally:
        log.close()


def _submit(sci: Person, code: Path, *extra: str) -> str:
    done = sci.run("job", "submit", str(code), "--to", OWNER, "--dataset", "visits", *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_whole_flow_submit_review_approve_run_share_results(world: dict) -> None:
    owner, sci, code, tmp = world["owner"], world["sci"], world["code"], world["tmp"]
    listed = sci.json("dataset", "list", "--datasite", OWNER, anyone=True)
    assert [d["name"] for d in listed] == ["visits"]
    tried = sci.json(
        "job",
        "try",
        str(code),
        "--dataset",
        "visits",
        "--datasite",
        OWNER,
        "--out",
        str(tmp / "try"),
        anyone=True,
    )
    assert tried["outcome"] == "finished"
    assert (tmp / "try" / "output" / "total.txt").read_text() == "2\n"

    job_id = _submit(sci, code)
    assert owner.received(job_id)["status"] == "submitted"
    review = owner.json("job", "review", job_id, local=True)
    assert review["manifest"]["entry"] == "python main.py"
    assert review["job"]["submitter"] == SCI
    assert owner.run("job", "review", job_id, "--show", "main.py", local=True).stdout == SUM
    assert sci.json("job", "status", job_id)["status"] == "submitted"

    assert owner.json("job", "approve", job_id, local=True)["status"] == "approved"
    ran = owner.json("job", "run", job_id, local=True)
    assert ran["outcome"] == "finished" and ran["status"] == "finished"
    paths = [f["path"] for f in owner.json("job", "outputs", job_id, local=True)["files"]]
    assert "output/total.txt" in paths
    assert owner.json("job", "share", job_id, local=True)["status"] == "shared"
    history = owner.json("job", "review", job_id, local=True)["history"]
    assert [(e["actor"], e["after"]) for e in history] == [
        (SCI, "submitted"),
        *[(OWNER, s) for s in ("approved", "running", "finished", "shared")],
    ]
    [listed_job] = sci.json("job", "list", "--refresh")["submitted"]
    assert (listed_job["id"], listed_job["status"]) == (job_id, "shared")

    waited = sci.run("job", "wait", job_id, "--timeout", "60", "--json")
    assert waited.returncode == 0 and json.loads(waited.stdout)["status"] == "shared"
    got = sci.json("job", "results", job_id, "--out", str(tmp / "results"))
    assert (tmp / "results" / "output" / "total.txt").read_text() == "42\n"
    assert "output/total.txt" in got["files"]
    assert PRIVATE_ROW.encode() not in store_bytes(world["root"])

    owner.stop()
    owner.serve()
    assert _audited(owner, job_id) == [
        (SCI, "submit", "submitted", ""),
        (OWNER, "approved", "approved", ""),
        (OWNER, "running", "running", ""),
        (OWNER, "finished", "finished", "finished"),
        (OWNER, "shared", "shared", ""),
    ]
    shown = owner.run("messages", "--job", job_id, local=True)
    assert shown.returncode == 0, shown.stderr
    assert [s for s in ("submitted", "running", "shared") if s not in shown.stdout] == []
    assert _audited(sci, job_id) == []


def test_rejection_reaches_the_scientist_with_its_reason(world: dict) -> None:
    owner, sci = world["owner"], world["sci"]
    job_id = _submit(sci, world["code"])
    owner.received(job_id)
    owner.json("job", "reject", job_id, "--reason", "prints row counts", local=True)
    waited = sci.run("job", "wait", job_id, "--timeout", "60", "--json")
    assert waited.returncode == 1
    assert json.loads(waited.stdout) == {
        "id": job_id,
        "status": "rejected",
        "reason": "prints row counts",
    }
    again = owner.run("job", "run", job_id, local=True)
    assert again.returncode == 2 and "only an approved job runs" in again.stderr
    assert _audited(owner, job_id)[1:] == [
        (OWNER, "rejected", "rejected", "prints row counts"),
        (OWNER, "refused run", None, f"job {job_id} is rejected; only an approved job runs"),
    ]


def test_a_failing_runs_stderr_never_reaches_the_store(world: dict) -> None:
    owner, sci, code = world["owner"], world["sci"], world["code"]
    (code / "main.py").write_text(f"import sys\nprint({MARKER!r}, file=sys.stderr)\nsys.exit(1)\n")
    job_id = _submit(sci, code)
    owner.received(job_id)
    owner.json("job", "approve", job_id, local=True)
    ran = owner.run("job", "run", job_id, "--json", local=True)
    assert ran.returncode == 1
    assert json.loads(ran.stdout)["status"] == "failed"
    assert sci.json("job", "status", job_id)["reason"] == "crashed: exit code 1"
    assert MARKER.encode() not in store_bytes(world["root"])
    owner.json("job", "withhold", job_id, "--reason", "logs show data", local=True)
    assert sci.json("job", "status", job_id)["status"] == "withheld"
    refused = sci.run("job", "results", job_id, "--out", str(world["tmp"] / "r"))
    assert refused.returncode == 2 and "403" in refused.stderr
    assert MARKER.encode() not in store_bytes(world["root"])
    assert _audited(owner, job_id)[-3:] == [
        (OWNER, "failed", "failed", "crashed: exit code 1"),
        (OWNER, "withheld", "withheld", "logs show data"),
        (SCI, "refused results", None, f"job {job_id} is withheld, not shared"),
    ]


def test_forged_state_changes_are_refused_and_recorded(world: dict) -> None:
    owner, sci = world["owner"], world["sci"]
    job_id = _submit(sci, world["code"])
    owner.received(job_id)
    with fedbox.rds.connect(world["root"], SCI, state_dir=sci.state_dir) as rds:
        for endpoint in FORGED:
            body = json.dumps({"id": job_id, "status": "approved"}).encode()
            answer = rds.app.send(OWNER, endpoint, body).wait(60)
            assert answer.status == 403, endpoint
        bad = rds.app.send(OWNER, "submit", b"not a package").wait(60)
        assert bad.status == 400
    assert owner.received(job_id)["status"] == "submitted"
    owner.stop()
    with fedbox.rds.connect(world["root"], OWNER, state_dir=owner.state_dir) as rds:
        refusals = [e for e in rds.owner.jobs.events(job_id) if e.action.startswith("refused")]
        assert {(e.actor, e.action) for e in refusals} == {
            (SCI, f"refused {a}") for a in ("approve", "run", "share", "update")
        }
        audit = rds.box.audit.records(app="rds", peer=SCI, status=403)
        assert {r.endpoint for r in audit} == {"approve", "run", "share", "update"}
        assert [j.status.value for j in rds.jobs()] == ["submitted"]
    assert _audited(owner, job_id) == [
        (SCI, "submit", "submitted", ""),
        *[(SCI, f"refused {a}", None, "only the owner may") for a in FORGED],
    ]


def test_another_scientist_can_neither_see_nor_fetch(world: dict, fedbox_home: Path) -> None:
    owner, sci = world["owner"], world["sci"]
    job_id = _submit(sci, world["code"])
    owner.received(job_id)
    owner.json("job", "approve", job_id, local=True)
    owner.json("job", "run", job_id, local=True)
    owner.json("job", "share", job_id, local=True)
    other = Person(world["root"], "other@lab.org", fedbox_home)
    with fedbox.rds.connect(world["root"], other.email, state_dir=other.state_dir) as rds:
        for endpoint in ("status", "results"):
            answer = rds.app.send(OWNER, endpoint, json.dumps({"id": job_id}).encode()).wait(60)
            assert answer.status == 404, endpoint
        listed = rds.app.send(OWNER, "list", b"").wait(60)
        assert listed.ok and json.loads(listed.body) == []
    assert _audited(owner, job_id)[-2:] == [
        (other.email, f"refused {endpoint}", None, "not the job's submitter")
        for endpoint in ("status", "results")
    ]
    with fedbox.rds.connect(world["root"], SCI, state_dir=sci.state_dir) as rds:
        mine = rds.app.send(OWNER, "list", b"").wait(60)
        assert [j["id"] for j in json.loads(mine.body)] == [job_id]
        prefix = rds.app.send(OWNER, "status", json.dumps({"id": job_id[:8]}).encode())
        assert prefix.wait(60).status == 404  # over RPC, ids are exact
        assert rds.job(job_id).results(world["tmp"] / "mine", timeout=60)


def test_auto_approval_runs_the_pinned_package_only(world: dict) -> None:
    owner, sci, code = world["owner"], world["sci"], world["code"]
    pinned = sci.json("job", "submit", str(code), "--to", OWNER, "--dataset", "visits")
    first = pinned["id"]
    owner.received(first)
    done = owner.run(
        "job",
        "allow",
        "--submitter",
        SCI,
        "--package",
        pinned["package_sha256"],
        "--share",
        local=True,
    )
    assert done.returncode == 0, done.stderr
    (code / "main.py").write_text(SUM + " \n")
    changed = _submit(sci, code)
    (code / "main.py").write_text(SUM)
    again = _submit(sci, code)
    assert sci.run("job", "wait", again, "--timeout", "120").returncode == 0
    sha = pinned["package_sha256"]
    rule = (f"rule:{SCI}:{sha[:16]}", f"pinned rule: approve, run and share {SCI}'s package")
    assert _audited(owner, again)[1] == (
        rule[0],
        "approved",
        "approved",
        f"{rule[1]}; package sha256 {sha}",
    )
    assert {a for a, *_ in _audited(owner, again)[2:]} == {rule[0]}  # ran and shared by it
    assert owner.received(changed)["status"] == "submitted"
    assert owner.received(first)["status"] == "submitted"
    assert sci.json("job", "status", changed)["status"] == "submitted"


def test_wait_reports_a_package_the_owner_refused(world: dict) -> None:
    sci = world["sci"]
    done = sci.run("job", "submit", str(world["code"]), "--to", OWNER, "--dataset", "nope")
    assert done.returncode == 0, done.stderr
    waited = sci.run("job", "wait", done.stdout.strip(), "--timeout", "60")
    assert waited.returncode == 2
    assert "refused the package" in waited.stderr and "no dataset 'nope'" in waited.stderr


def test_a_job_submitted_while_the_owner_is_down_is_taken_when_it_starts(world: dict) -> None:
    owner, sci = world["owner"], world["sci"]
    owner.stop()
    job_id = _submit(sci, world["code"])
    owner.serve()
    assert owner.received(job_id)["status"] == "submitted"


def test_a_50_mb_package_arrives_whole(world: dict) -> None:
    owner, sci, code = world["owner"], world["sci"], world["code"]
    (code / "weights.bin").write_bytes(bytes(range(256)) * (50 * 4096))
    job_id = _submit(sci, code)
    owner.received(job_id, timeout=120)
    files = {
        f["path"]: f["size"]
        for f in owner.json("job", "review", job_id, local=True)["manifest"]["files"]
    }
    assert files["weights.bin"] == 50 * 1024 * 1024
    owner.json("job", "approve", job_id, local=True)
    assert owner.json("job", "run", job_id, local=True)["status"] == "finished"


def test_the_python_api_covers_both_sides(world: dict) -> None:
    owner, sci, tmp = world["owner"], world["sci"], world["tmp"]
    with (
        fedbox.rds.connect(world["root"], SCI, state_dir=sci.state_dir) as scientist,
        fedbox.rds.connect(world["root"], OWNER, state_dir=owner.state_dir) as data_owner,
    ):
        assert [d.name for d in scientist.datasets(OWNER)] == ["visits"]
        job = scientist.submit(world["code"], to=OWNER, dataset="visits")
        assert scientist.submission_answer(job, 60)["status"] == "submitted"
        [mine] = data_owner.jobs(status="submitted")
        assert mine.id == job.id and mine.manifest().entry == "python main.py"
        assert mine.run(mock=True).ok
        assert mine.status is JobState.SUBMITTED
        assert mine.approve().run().ok
        mine.share()
        assert job.wait(60) is JobState.SHARED
        job.results(tmp / "api")
    assert (tmp / "api" / "output" / "total.txt").read_text() == "42\n"


def _job_processes(job_id: str) -> list[int]:
    """Processes whose environment names the job (the job itself, wherever it runs)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if f"FEDBOX_JOB_ID={job_id}".encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def _until(condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_run_whose_runner_is_killed_ends_failed_and_takes_the_job_with_it(
    world: dict,
) -> None:
    owner, sci, code = world["owner"], world["sci"], world["code"]
    (code / "main.py").write_text(
        "import os, pathlib, time\n"
        "pathlib.Path(os.environ['OUTPUT_DIR'], 'started').write_text('1')\n"
        "time.sleep(600)\n"
    )
    job_id = _submit(sci, code)
    owner.received(job_id)
    owner.json("job", "approve", job_id, local=True)
    runner = subprocess.Popen(
        [sys.executable, "-m", "fedbox", *owner._args("job", "run", job_id, store=False)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = owner.state_dir / "rds" / "jobs" / job_id / "output" / "started"
    _until(started.exists)
    assert _job_processes(job_id)
    runner.kill()
    runner.wait()
    _until(lambda: not _job_processes(job_id))
    assert owner.received(job_id)["status"] == "running"
    owner.stop()
    owner.serve()
    job = owner.received(job_id)
    assert job["status"] == "failed" and job["reason"].startswith("interrupted")
