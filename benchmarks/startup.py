"""Start-up of ``fedbox simulate``: from the command to the first round's messages.

A 3-client run of a tiny app (``fl_round.py``'s, 40 KB model), repeated, with the
phases it passes through, each as seconds after the command started:

- ``announced``: the command printed its plan (its imports are done, keys and folders
  are being made);
- ``joined N``: the N-th client process answered the run's join message (spawned,
  imported, connected, serving);
- ``first round``: the ServerApp started its first round (FedAvg calls its evaluate
  function with round 0 just before it sends the first messages);
- ``round 1 done``: the ServerApp had the first round's replies (the clients loaded
  Flower and the ClientApp to answer them);
- ``end``: the command exited;
- ``agg cpu``: CPU seconds the command's own process (the aggregator) had used when the
  first round started: the part of the start-up that no second core can shorten;
- ``cpu``: CPU seconds the command and its client processes used in all, which a busy
  machine stretches far less than the times above.

Beside them, the pieces on their own: a bare interpreter, the imports of
:data:`IMPORTS` (each in a fresh interpreter, so each includes what it shares with the
others), the client processes' entry module, and making one identity's keys.

Usage: ``python benchmarks/startup.py [--repeat 3] [--rounds 2]``. Issue 20's target:
first round <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fl_round import write_app


def _seconds(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - started


IMPORTS = {
    "import CLI": "import fedbox.cli.entry",
    "import store": "import fedbox.rpc",
    "import Flower": "import fedbox.fl.client",
    "import server": "import fedbox.fl.server",
}
"""What the aggregator loads first (the command's entry, with the Flower commands), what
every participant loads to connect (store, crypto, RPC), what a client loads after it
joined (Flower and the ClientApp's side; a forked client inherits all of these) and what
the aggregator loads to run the ServerApp."""


def pieces(repeat: int) -> dict[str, float]:
    """Median seconds of each piece run on its own."""
    py = sys.executable
    keys = (
        "import sys, tempfile, time; from pathlib import Path; "
        "from fedbox.crypto import Identity; t = time.perf_counter(); "
        "Identity.load_or_create(Path(tempfile.mkdtemp()), 'a@b.org'); "
        "print(time.perf_counter() - t)"
    )
    runs: dict[str, list[float]] = {"python": [], **{n: [] for n in IMPORTS}}
    runs |= {"client entry": [], "keys": []}
    for _ in range(repeat):
        runs["python"].append(_seconds([py, "-c", "pass"]))
        for name, code in IMPORTS.items():
            runs[name].append(_seconds([py, "-c", code]))
        runs["client entry"].append(_seconds([py, "-m", "fedbox.cli.fl_commands", "--help"]))
        out = subprocess.run([py, "-c", keys], check=True, capture_output=True, text=True)
        runs["keys"].append(float(out.stdout))
    return {name: statistics.median(values) for name, values in runs.items()}


def one_run(app: Path, rounds: int, work: Path) -> dict[str, float]:
    """Seconds after the command of each phase of one simulate run."""
    timing = work / "timing"
    config = f"model-floats=10000 num-server-rounds={rounds} timing-file='{timing}'"
    cmd = [sys.executable, "-m", "fedbox", "simulate", str(app), "--json-progress"]
    cmd += ["--clients", "3", "--run-config", config, "--root", str(work / "root")]
    cpu_before = _children_cpu()
    started_wall = time.time()
    started = time.perf_counter()
    phases: dict[str, float] = {}
    joined = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as p:
        assert p.stdout is not None
        for line in p.stdout:
            at = time.perf_counter() - started
            phases.setdefault("announced", at)
            if line.startswith("{") and json.loads(line).get("event") == "joined":
                joined += 1
                phases[f"joined {joined}"] = at
    phases["end"] = time.perf_counter() - started
    if p.returncode != 0:
        raise RuntimeError(f"fedbox simulate exited with {p.returncode}")
    stamps = {
        int(r): (float(t), float(c)) for r, t, c in map(str.split, timing.read_text().splitlines())
    }
    phases["first round"] = stamps[0][0] - started_wall
    phases["round 1 done"] = stamps[1][0] - started_wall
    phases["agg cpu"] = stamps[0][1]
    phases["cpu"] = _children_cpu() - cpu_before
    return phases


def _children_cpu() -> float:
    """User and system CPU seconds of every child (and their children) waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work_root = Path(tempfile.mkdtemp(prefix="fedbox-startup-"))
    try:
        app = write_app(work_root)
        for name, seconds in pieces(args.repeat).items():
            print(f"{name:>14}: {seconds:.3f} s", flush=True)
        runs = []
        for i in range(args.repeat):
            work = work_root / f"run-{i}"
            work.mkdir()
            runs.append(one_run(app, args.rounds, work))
            shown = "  ".join(f"{k} {v:.2f}" for k, v in runs[-1].items())
            print(f"run {i + 1}: {shown}", flush=True)
        print(f"\nmedian of {args.repeat} runs, {args.rounds} rounds, seconds after the command:")
        for phase in runs[0]:
            values = [r[phase] for r in runs if phase in r]
            print(f"{phase:>14}: {statistics.median(values):.3f}")
        print("target (issue 20): first round <= 1 s")
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
