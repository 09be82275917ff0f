"""What end-to-end encryption costs: RPC round trips encrypted vs plain, in the same run.

Run: ``.venv/bin/python benchmarks/crypto_overhead.py [--sizes 1KB,16MB,1GB]
[--calls 1KB=100,16MB=10,1GB=3]``

A server process (spawned) holds two participants, one plain and one encrypting, both
answering ``echo``; this process holds the two matching callers and sends one request at a
time, alternating plain and encrypted calls so drift hits both alike. Every file is
written with fsync, so the plain round trip is mostly disk; the ratio is encrypted p50 over
plain p50.

For the largest body (1 GB by default) the caller sends from an open file, so it never
holds the request; the server holds the request body once (``Request.body`` is bytes) and
the caller holds the echoed response once. Peak RSS (Linux ``VmHWM``, reset before each
call through ``/proc/self/clear_refs``) is reported per call for both processes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import APP, Server, take_peak_rss

import fedbox

SIZES = {"1KB": 1 << 10, "1MB": 1 << 20, "16MB": 16 << 20, "256MB": 256 << 20, "1GB": 1 << 30}
DEFAULT_CALLS = {"1KB": 100, "1MB": 30, "16MB": 10, "256MB": 3, "1GB": 3}
MODES = ("plain", "encrypted")
SERVER = {"plain": "server-plain@bench.org", "encrypted": "server-enc@bench.org"}
CLIENT = {"plain": "client-plain@bench.org", "encrypted": "client-enc@bench.org"}
STREAM_FROM = 256 << 20
"""Bodies this large are sent from a file on disk, not from memory."""


def _body_file(folder: Path, size: int) -> tuple[Path, str]:
    """A file of ``size`` random bytes and its SHA-256, written without holding it."""
    path = folder / f"body-{size}.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 16 << 20))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return path, digest.hexdigest()


def _one_call(app: fedbox.App, to: str, body: bytes | Path) -> tuple[float, dict, int, str]:
    """Seconds for one round trip, the caller's peak RSS after sending and overall, the
    response length and digest (checked outside the timed part)."""
    take_peak_rss()
    start = time.perf_counter()
    if isinstance(body, Path):
        with open(body, "rb") as f:
            fut = app.send(to, "echo", f)
    else:
        fut = app.send(to, "echo", body)
    sent_peak = take_peak_rss()["peak"]
    resp = fut.wait(3600)
    elapsed = time.perf_counter() - start
    total_peak = max(sent_peak, take_peak_rss()["peak"])
    assert resp.status == 200, resp.text[:300]
    size, digest = len(resp.body), hashlib.sha256(resp.body).hexdigest()
    del resp
    return elapsed, {"sent": sent_peak, "total": total_peak}, size, digest


def _server_peak(app: fedbox.App, to: str) -> int:
    return json.loads(app.send(to, "memory").wait(60).body)["peak"]


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1KB,16MB,1GB")
    parser.add_argument("--calls", default="", help="per size, e.g. 1KB=100,16MB=10,1GB=3")
    args = parser.parse_args()
    calls = dict(DEFAULT_CALLS)
    for item in filter(None, args.calls.split(",")):
        name, count = item.split("=")
        calls[name] = int(count)
    sizes = args.sizes.split(",")
    work = Path(tempfile.mkdtemp(prefix="fedbox-crypto-bench-"))
    root, home = work / "store", work / "home"
    os.environ["FEDBOX_HOME"] = str(home)
    boxes = [(SERVER["plain"], False), (SERVER["encrypted"], True)]
    with Server(root, home, boxes) as server:
        clients = {m: fedbox.connect(root, CLIENT[m], encrypt=m == "encrypted") for m in MODES}
        apps = {m: clients[m].app(APP) for m in MODES}
        print(f"server pid {server.process.pid}, store {root} (fsync on every write)")
        print(f"{'size':>6} {'calls':>5} {'plain p50 ms':>13} {'enc p50 ms':>11} {'ratio':>6}")
        memory: dict[str, dict[str, list[int]]] = {}
        for name in sizes:
            size = SIZES[name]
            if size >= STREAM_FROM:
                body: bytes | Path
                body, expected = _body_file(work, size)
            else:
                body = os.urandom(size)
                expected = hashlib.sha256(body).hexdigest()
                for m in MODES:  # warm-up
                    apps[m].send(SERVER[m], "echo", body).wait(60)
            for m in MODES:
                _server_peak(apps[m], SERVER[m])  # reset the server's peak
            times: dict[str, list[float]] = {m: [] for m in MODES}
            peaks = {m: {"sent": [], "total": [], "server": []} for m in MODES}
            for _ in range(calls[name]):
                for m in MODES:
                    elapsed, peak, got, digest = _one_call(apps[m], SERVER[m], body)
                    assert got == size and digest == expected, f"{m} {name}: wrong echo"
                    times[m].append(elapsed)
                    peaks[m]["sent"].append(peak["sent"])
                    peaks[m]["total"].append(peak["total"])
                    peaks[m]["server"].append(_server_peak(apps[m], SERVER[m]))
                    for f in root.rglob("*.re*"):
                        f.unlink()
            plain, enc = (statistics.median(times[m]) for m in MODES)
            print(
                f"{name:>6} {calls[name]:>5} {plain * 1e3:13.1f} {enc * 1e3:11.1f}"
                f" {enc / plain:6.3f}",
                flush=True,
            )
            if size >= STREAM_FROM:
                memory[name] = {m: {k: max(v) for k, v in peaks[m].items()} for m in MODES}
                body.unlink()
        for name, by_mode in memory.items():
            size = SIZES[name]
            print(f"\npeak RSS per call, {name} body ({_mib(size)}), max over calls:")
            print(f"{'':>10} {'caller (sent)':>18} {'caller (+reply)':>18} {'server':>18}")
            for m in MODES:
                row = by_mode[m]
                cells = [f"{_mib(row[k])} {row[k] / size:4.2f}x" for k in ("sent", "total")]
                cells.append(f"{_mib(row['server'])} {row['server'] / size:4.2f}x")
                print(f"{m:>10} " + " ".join(f"{c:>18}" for c in cells))
        if not take_peak_rss()["reset"]:
            print("note: peak RSS could not be reset here: figures are per-process peaks")
        for box in clients.values():
            box.close()


if __name__ == "__main__":
    main()
