"""The whole flow on a remote store (WebDAV): same commands, storage options as flags."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from rds_processes import Person, store_bytes
from remote_servers import Target

OWNER = "owner@hospital.org"
SCI = "sci@lab.org"
PRIVATE_ROW = "patient-0042"


def _flags(options: dict[str, object]) -> list[str]:
    out: list[str] = []
    for key, value in options.items():
        out += ["--storage-option", f"{key}={json.dumps(value)}"]
    return out


def test_whole_flow_over_webdav(
    make_target: Callable[[str], Target], tmp_path: Path, fedbox_home: Path
) -> None:
    target = make_target("webdav")
    flags = _flags(target.options)
    owner = Person(target.url, OWNER, fedbox_home, flags)
    sci = Person(target.url, SCI, fedbox_home, flags)
    private, mock, code = tmp_path / "private", tmp_path / "mock", tmp_path / "code"
    for folder in (private, mock, code):
        folder.mkdir()
    (private / "rows.csv").write_text(f"{PRIVATE_ROW},40\n")
    (mock / "rows.csv").write_text("x,1\n")
    (code / "main.py").write_text(
        "import os, pathlib\n"
        "rows = (pathlib.Path(os.environ['DATA_DIR']) / 'rows.csv').read_text()\n"
        "pathlib.Path(os.environ['OUTPUT_DIR'], 'n.txt').write_text(str(len(rows.split())))\n"
    )
    created = owner.run(
        "dataset", "create", "visits", "--private", str(private), "--mock", str(mock)
    )
    assert created.returncode == 0, created.stderr
    assert [d["name"] for d in sci.json("dataset", "list", anyone=True)] == ["visits"]
    owner.serve()
    try:
        done = sci.run("job", "submit", str(code), "--to", OWNER, "--dataset", "visits")
        assert done.returncode == 0, done.stderr
        job_id = done.stdout.strip()
        owner.received(job_id)
        owner.json("job", "approve", job_id, local=True)
        assert owner.json("job", "run", job_id, local=True)["status"] == "finished"
        owner.json("job", "share", job_id, local=True)
        assert sci.run("job", "wait", job_id, "--timeout", "120").returncode == 0
        sci.json("job", "results", job_id, "--out", str(tmp_path / "out"))
    finally:
        owner.stop()
    assert (tmp_path / "out" / "output" / "n.txt").read_text() == "1"
    folder = target.server.root / target.url.rsplit("/", 1)[1]
    assert (folder / "datasites" / OWNER / "public" / "datasets" / "visits" / "mock").is_dir()
    assert PRIVATE_ROW.encode() not in store_bytes(folder)
