"""Chaos benchmark: how many of N runs survive random SIGKILLs of their participants.

Each run is a deployment of real ``fedbox run`` processes (one aggregator, two
datasites, the ``fbresume`` test app, 3 rounds of train and evaluate) over a shared
folder. While it runs, ``--kills`` times at random moments a random participant is
killed with SIGKILL and started again with the same command. A run survives if its
aggregator finishes and its final model equals, bit for bit, that of a run nobody
killed; the app's clients refuse a message they handled before, so a message handled
twice makes the run fail. The CI test (``tests/chaos/``) runs ten of these.

Usage: ``python benchmarks/chaos.py [--runs 50] [--kills 3] [--seed 0] [--keep DIR]``.
Prints one line per run and the survivors; exits 1 if any run did not survive.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chaos"))

import numpy as np
from chaos_run import AGG, Deployment, chaos_run


def _reference(work: Path) -> np.ndarray:
    dep = Deployment(work)
    try:
        dep.start_all()
        if dep.finish() != 0:
            raise SystemExit(f"the reference run failed:\n{dep.logs(AGG)}")
        return dep.final()
    finally:
        dep.close()


def _one(work: Path, rng: random.Random, kills: int, reference: np.ndarray) -> str | None:
    """None if the run survived, else why not."""
    dep = chaos_run(work, rng, kills)
    try:
        if dep.procs[AGG].returncode != 0:
            return f"aggregator exited {dep.procs[AGG].returncode}"
        if not (dep.output / "final.npy").exists():
            return "no final model"
        if not np.array_equal(dep.final(), reference):
            return "final model differs from the reference"
        return None
    finally:
        dep.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="keep the runs' folders (logs) here")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="fedbox-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        reference = _reference(work / "reference")
        survived = 0
        started = time.monotonic()
        for i in range(args.runs):
            t0 = time.monotonic()
            failure = _one(work / f"run-{i}", random.Random(args.seed + i), args.kills, reference)
            survived += failure is None
            status = "survived" if failure is None else f"FAILED: {failure}"
            print(f"run {i:3d}: {status} ({time.monotonic() - t0:.1f} s)", flush=True)
        elapsed = time.monotonic() - started
        print(
            f"{survived}/{args.runs} runs survived {args.kills} SIGKILLs each "
            f"({elapsed:.0f} s, {elapsed / max(args.runs, 1):.1f} s per run)"
        )
        return 0 if survived == args.runs else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
