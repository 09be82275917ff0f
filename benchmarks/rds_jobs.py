"""Listing an owner's jobs: 1,000 jobs (target: under a second), and a 50 MB package.

Run: ``.venv/bin/python benchmarks/rds_jobs.py [--jobs 1000] [--package-mb 50]``

Lists from the owner's job store (what ``fedbox job list`` and the daemon's ``list``
endpoint read), all jobs and one submitter's; and packs, checks and unpacks a code
folder of ``--package-mb`` MB (what ``job submit`` and the daemon do to it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from fedbox.datasite.workspace import Workspace
from fedbox.rds import JobRecord, JobState
from fedbox.rds.jobs import JobStore
from fedbox.rds.package import pack, unpack


def _timed(action) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


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
            every = _timed(jobs.list)
            mine = _timed(lambda: jobs.list(submitter="sci3@x.org"))
        print(f"list {args.jobs} jobs: {every * 1000:.1f} ms (target < 1000 ms)")
        print(f"list one submitter's {args.jobs // 10}: {mine * 1000:.1f} ms")

        code = Path(tmp, "code")
        code.mkdir()
        (code / "main.py").write_text("print('hi')\n")
        (code / "weights.bin").write_bytes(os.urandom(args.package_mb << 20))
        packed: list[bytes] = []
        t_pack = _timed(lambda: packed.append(pack(code, entry="python main.py", dataset="d")[0]))
        t_unpack = _timed(lambda: unpack(packed[0], Path(tmp, "out")))
        print(f"{args.package_mb} MB package: pack {t_pack:.2f} s, check + unpack {t_unpack:.2f} s")


if __name__ == "__main__":
    main()
