"""The whole code-job flow with two owners and one scientist, each a separate process with
its own state dir: each owner holds and decides only the job sent to it, and the
scientist gets each owner's answer from that owner alone."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rds_processes import Person, store_bytes

import fedbox.rds

SCI = "sci@lab.org"
ROWS = {"a@one.org": "alice-row-7f1,40\nb,2\n", "b@two.org": "bob-row-9c2,5\n"}
SUM = """\
import os, pathlib
rows = (pathlib.Path(os.environ["DATA_DIR"]) / "rows.csv").read_text().split()
pathlib.Path(os.environ["OUTPUT_DIR"], "total.txt").write_text(
    str(sum(int(r.split(",")[1]) for r in rows))
)
"""


@pytest.fixture
def world(root: Path, tmp_path: Path, fedbox_home: Path) -> Iterator[dict]:
    owners = []
    try:
        for email, rows in ROWS.items():
            owner = Person(root, email, fedbox_home)
            private, mock = tmp_path / email / "private", tmp_path / email / "mock"
            private.mkdir(parents=True)
            mock.mkdir(parents=True)
            (private / "rows.csv").write_text(rows)
            (mock / "rows.csv").write_text("x,1\n")
            done = owner.run(
                "dataset", "create", "visits", "--private", str(private), "--mock", str(mock)
            )
            assert done.returncode == 0, done.stderr
            owner.serve()
            owners.append(owner)
        code = tmp_path / "code"
        code.mkdir()
        (code / "main.py").write_text(SUM)
        yield {"owners": owners, "sci": Person(root, SCI, fedbox_home), "code": code, "root": root}
    finally:
        for owner in owners:
            owner.stop()


def test_each_owner_decides_its_own_job_and_sees_no_other(world: dict, tmp_path: Path) -> None:
    a, b = world["owners"]
    sci = world["sci"]
    ids = {}
    for owner in (a, b):
        done = sci.run(
            "job", "submit", str(world["code"]), "--to", owner.email, "--dataset", "visits"
        )
        assert done.returncode == 0, done.stderr
        ids[owner.email] = done.stdout.strip()
        owner.received(ids[owner.email])
    assert [j["id"] for j in a.json("job", "list", local=True)["received"]] == [ids[a.email]]
    assert [j["id"] for j in b.json("job", "list", local=True)["received"]] == [ids[b.email]]
    for owner, other in ((a, b), (b, a)):
        refused = owner.run("job", "approve", ids[other.email], local=True)
        assert refused.returncode == 2 and "no job" in refused.stderr
    a.json("job", "approve", ids[a.email], local=True)
    assert a.json("job", "run", ids[a.email], local=True)["status"] == "finished"
    a.json("job", "share", ids[a.email], local=True)
    b.json("job", "reject", ids[b.email], "--reason", "not this quarter", local=True)
    assert sci.run("job", "wait", ids[a.email], "--timeout", "120").returncode == 0
    assert sci.run("job", "wait", ids[b.email], "--timeout", "120").returncode == 1
    sci.json("job", "results", ids[a.email], "--out", str(tmp_path / "a"))
    assert (tmp_path / "a" / "output" / "total.txt").read_text() == "42"
    assert sci.json("job", "status", ids[b.email])["reason"] == "not this quarter"
    with fedbox.rds.connect(world["root"], SCI, state_dir=sci.state_dir) as rds:
        asked = json.dumps({"id": ids[a.email]}).encode()
        assert rds.app.send(b.email, "status", asked).wait(60).status == 404
        states = {j.owner: j.last_status.value for j in rds.refresh(timeout=60)}
    assert states == {a.email: "shared", b.email: "rejected"}
    stored = store_bytes(world["root"])
    assert b"alice-row-7f1" not in stored and b"bob-row-9c2" not in stored
