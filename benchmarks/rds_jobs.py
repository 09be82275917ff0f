"""Listing an owner's jobs: 1,000 jobs (target: under a second), and a 50 MB package.

Run: ``.venv/bin/python benchmarks/rds_jobs.py [--jobs 1000] [--package-mb 50]``

Lists from the owner's job store (what ``fedbox job list`` and the daemon's ``list``
endpoint read), all jobs and one submitter's; and packs, checks and unpacks a code
folder of ``--package-mb`` MB (what ``job submit`` and the daemon do to it). Each figure
is the best of three runs (twenty for listings), with its ratio to a reference measured
in the same run: the same rows fetched by plain ``sqlite3`` (what the job records cost
on top), and the same folder tarred and untarred by plain ``tarfile`` (what the
manifest, hashing and member checks cost on top).
"""

from __future__ import annotations

import argparse
import io
import os
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path

from fedbox.datasite.workspace import Workspace
from fedbox.rds import JobRecord, JobState
from fedbox.rds.jobs import JobStore
from fedbox.rds.package import pack, unpack


def _timed(action, runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Best of ``runs`` runs of ``action``, in seconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


LIST_RUNS = 20
"""A listing takes milliseconds: the best of many is what a loaded machine lets through."""


def _raw_rows(db: Path, sql: str, params: tuple[str, ...] = ()) -> None:
    conn = sqlite3.connect(db)
    try:
        conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _plain_tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def _plain_untar(data: bytes, into: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")


def _line(what: str, took: float, reference: float, unit: str = "ms") -> str:
    scale, digits = (1000, 1) if unit == "ms" else (1, 3)
    return (
        f"{what}: {took * scale:.{digits}f} {unit} (plain: {reference * scale:.{digits}f} "
        f"{unit}, ratio {took / reference:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--package-mb", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace.for_email("owner@x.org", Path(tmp, "state")).ensure()
        with JobStore(workspace) as jobs:
            now = time.time()
            for i in range(args.jobs):
                jobs.add(
                    JobRecord(
                        id=f"{i:08d}-0000-4000-8000-000000000000",
                        owner="owner@x.org",
                        submitter=f"sci{i % 10}@x.org",
                        name=f"job{i}",
                        dataset="d",
                        entry="python main.py",
                        kind="code",
                        package_sha256="0" * 64,
                        status=JobState.SUBMITTED,
                        created=now + i,
                        updated=now + i,
                    )
                )
            every = _timed(jobs.list, LIST_RUNS)
            mine = _timed(lambda: jobs.list(submitter="sci3@x.org"), LIST_RUNS)
        db = workspace.state_dir / "rds" / "jobs.db"
        sql = "SELECT * FROM jobs ORDER BY created DESC"
        raw_every = _timed(lambda: _raw_rows(db, sql), LIST_RUNS)
        by = "SELECT * FROM jobs WHERE submitter=? ORDER BY created DESC"
        raw_mine = _timed(lambda: _raw_rows(db, by, ("sci3@x.org",)), LIST_RUNS)
        print(_line(f"list {args.jobs} jobs (target < 1000 ms)", every, raw_every))
        print(_line(f"list one submitter's {args.jobs // 10}", mine, raw_mine))

        code = Path(tmp, "code")
        code.mkdir()
        (code / "main.py").write_text("print('hi')\n")
        (code / "weights.bin").write_bytes(os.urandom(args.package_mb << 20))
        packed: list[bytes] = []
        t_pack = _timed(lambda: packed.append(pack(code, entry="python main.py", dataset="d")[0]))
        t_tar = _timed(lambda: _plain_tar(code))
        outs = iter(range(10))
        t_unpack = _timed(lambda: unpack(packed[0], Path(tmp, f"out{next(outs)}")))
        plain = _plain_tar(code)
        t_untar = _timed(lambda: _plain_untar(plain, Path(tmp, f"out{next(outs)}")))
        print(_line(f"{args.package_mb} MB package: pack", t_pack, t_tar, "s"))
        print(_line(f"{args.package_mb} MB package: check + unpack", t_unpack, t_untar, "s"))


if __name__ == "__main__":
    main()
