"""Cross-process RPC round trip over a local folder, next to plain file I/O.

Run: ``.venv/bin/python benchmarks/rpc_latency.py [--calls 200] [--sizes 1KB,1MB,16MB]``

A server process answers ``echo``; this process sends one request at a time and waits
for the reply (request and response both written with fsync). The reference, measured
in the same run on the same disk, is plain file I/O of the same body: write + fsync +
read, once ("one way") and twice ("there and back", what a round trip moves).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import APP, Server, percentile

import fedbox

SIZES = {"1KB": 1 << 10, "1MB": 1 << 20, "16MB": 16 << 20}


def _plain_io(folder: Path, body: bytes) -> float:
    """Seconds to write (fsync'd) and read back ``body`` with plain file calls."""
    path = folder / "plain.bin"
    start = time.perf_counter()
    with open(path, "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    with open(path, "rb") as f:
        f.read()
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--sizes", default=",".join(SIZES))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fedbox-bench-"))
    root, home = work / "store", work / "home"
    os.environ["FEDBOX_HOME"] = str(home)
    with Server(root, home, [("server@bench.org", False)]) as server:
        pid = server.process.pid
        print(f"{args.calls} sequential calls per size, server in pid {pid}, store {root}")
        header = (
            f"{'size':>6} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'plain 1-way ms':>15}"
            f" {'p50/1-way':>10} {'p50/2-way':>10}"
        )
        print(header)
        with fedbox.connect(root, "client@bench.org", encrypt=False) as box:  # plain transport
            app = box.app(APP)
            for name in args.sizes.split(","):
                body = os.urandom(SIZES[name])
                app.send("server@bench.org", "echo", body).wait(30)
                rtts, plain = [], []
                for _ in range(args.calls):
                    start = time.perf_counter()
                    resp = app.send("server@bench.org", "echo", body).wait(60)
                    rtts.append(time.perf_counter() - start)
                    assert resp.status == 200 and len(resp.body) == len(body)
                    plain.append(_plain_io(work, body))
                p50, ref = statistics.median(rtts), statistics.median(plain)
                print(
                    f"{name:>6} {p50 * 1e3:9.2f} {percentile(rtts, 0.95) * 1e3:9.2f}"
                    f" {percentile(rtts, 0.99) * 1e3:9.2f} {ref * 1e3:15.2f}"
                    f" {p50 / ref:10.2f} {p50 / (2 * ref):10.2f}",
                    flush=True,
                )
                for f in root.rglob("*.re*"):
                    f.unlink()
    print("reference: the system we replace polls every 2-3 s, i.e. ~2000-3000 ms per hop")


if __name__ == "__main__":
    main()
