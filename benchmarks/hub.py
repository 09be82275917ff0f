"""The hub on loopback: RPC round trips, a burst, big files, and what idle clients cost.

Run: ``.venv/bin/python benchmarks/hub.py [--calls 300] [--big-mb 1024] [--idle-seconds 60]
[--only rpc,big,fl,idle]``

``big`` also kills (SIGKILL) a process half-way through a resumable upload of the file and
resumes it from another: the 1 GB case of the interrupted upload, too slow for the tests
(which do it at 48 MiB).

A ``fedbox hub serve --dev`` process is started on 127.0.0.1. Bob answers ``echo`` in a
process of his own (his own FEDBOX_HOME holding his hub login); Alice sends from here.
The same round trips through a local folder are measured in the same run for the ratio.
``fl``: the digits example over ``fedbox simulate --clients 3`` with ``--hub`` and over a
local folder, seconds per round (train + evaluate, median of rounds after the first).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _common import APP, Server, percentile

import fedbox
from fedbox.hub.credentials import login, request_code
from fedbox.store import open_store

ALICE, BOB = "alice@bench.org", "bob@bench.org"
DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
SECTIONS = ("rpc", "big", "fl", "idle")
_ROUND_ROW = re.compile(r"│\s+(\d+) │ (?:train|evaluate)\s+│.*?│\s+([0-9.]+) │ [^│]*│$", re.M)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_hub(data: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedbox", "hub", "serve", "--data", str(data), "--port",
         str(port), "--dev", "--login-per-email", "100000", "--login-per-address", "100000"],
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)  # still binding
    raise RuntimeError("the hub did not start")


def _login(url: str, email: str, home: Path) -> None:
    os.environ["FEDBOX_HOME"] = str(home)
    code = request_code(url, email)
    assert code is not None
    login(url, email, code)


def _round_trips(
    root: str, home: Path, calls: int, requests: Callable[[], float] = lambda: 0.0
) -> tuple[list[float], float, float]:
    """(1 KB round-trip times, seconds for 100 x 1 KB sent at once to be all answered,
    hub requests per round trip as ``requests()`` counts them)."""
    os.environ["FEDBOX_HOME"] = str(home)
    body = os.urandom(1024)
    with fedbox.connect(root, ALICE, encrypt=False) as box:
        app = box.app(APP)
        app.send(BOB, "echo", body).wait(60)
        rtts = []
        before = requests()
        for _ in range(calls):
            start = time.perf_counter()
            assert app.send(BOB, "echo", body).wait(60).status == 200
            rtts.append(time.perf_counter() - start)
        per_call = (requests() - before) / calls
        start = time.perf_counter()
        futures = [app.send(BOB, "echo", body) for _ in range(100)]
        _, pending = box.wait(futures, timeout=120)
        burst = time.perf_counter() - start
        assert not pending
    return rtts, burst, per_call


def _rpc_row(name: str, rtts: list[float], burst: float) -> str:
    return (
        f"{name:>8} {statistics.median(rtts) * 1e3:9.2f} {percentile(rtts, 0.99) * 1e3:9.2f}"
        f" {burst:12.3f}"
    )


def _received(db: Path, target: str) -> int:
    """The bytes the hub holds of the unfinished upload to ``target`` (its database says)."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT received FROM uploads WHERE path = ?", (target,)).fetchone()
    return int(row[0]) if row else 0


def _killed_and_resumed(url: str, source: Path, db: Path) -> None:
    """The big file again, as a resumable upload whose process is killed (SIGKILL) once
    half of it is on the hub; then resumed from here, which sends only the rest."""
    size = source.stat().st_size
    target = f"datasites/{ALICE}/resumed.bin"
    script = (
        "from fedbox.store import open_store\n"
        f"store = open_store({url!r}, resumable_above=0, part_size={16 << 20})\n"
        f"with open({str(source)!r}, 'rb') as f:\n"
        f"    store.put({target!r}, f)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 600
    while _received(db, target) < size // 2:
        if child.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the upload did not get half-way")
        time.sleep(0.01)  # watching another process's progress
    child.kill()
    child.wait()
    with open_store(url, resumable_above=0, part_size=16 << 20) as store:
        kept = _received(db, target)
        start = time.perf_counter()
        with open(source, "rb") as f:
            store.put(target, f)
        resumed = time.perf_counter() - start
        digest = hashlib.sha256()
        with store.open(target) as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        store.delete(target)
    whole = hashlib.sha256(source.read_bytes()).hexdigest()
    print(
        f"killed at {kept / 2**20:.0f} of {size / 2**20:.0f} MiB; resumed in {resumed:.1f} s, "
        f"content {'identical' if digest.hexdigest() == whole else 'DIFFERENT'}"
    )


def _big_file(url: str, home: Path, work: Path, megabytes: int) -> None:
    os.environ["FEDBOX_HOME"] = str(home)
    source = work / "big.bin"
    with open(source, "wb") as f:
        for _ in range(megabytes):
            f.write(os.urandom(1 << 20))
    size = megabytes << 20
    start = time.perf_counter()
    shutil.copyfile(source, work / "copy.bin")
    copy = time.perf_counter() - start
    (work / "copy.bin").unlink()
    with open_store(url) as store:
        start = time.perf_counter()
        with open(source, "rb") as f:
            store.put(f"datasites/{ALICE}/big.bin", f)
        up = time.perf_counter() - start
        start = time.perf_counter()
        with store.open(f"datasites/{ALICE}/big.bin") as f:
            while f.read(1 << 20):
                pass
        down = time.perf_counter() - start
        store.delete(f"datasites/{ALICE}/big.bin")
    mb = size / 1e6
    print(
        f"{megabytes} MiB file: up {mb / up:7.1f} MB/s, down {mb / down:7.1f} MB/s, "
        f"plain copy {mb / copy:7.1f} MB/s (up/copy {copy / up:.2f}, down/copy {copy / down:.2f})",
        flush=True,
    )
    _killed_and_resumed(url, source, work / "hub" / "hub.db")
    source.unlink()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _requests_total(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fedbox_hub_requests_total{") and 'route="/metrics"' not in line
    )


def _idle(url: str, base: str, home: Path, pid: int, files: int, clients: int, secs: float) -> None:
    os.environ["FEDBOX_HOME"] = str(home)
    with open_store(url) as store:
        for n in range(files):
            store.put(f"datasites/{ALICE}/many/{n % 100}/f{n}.txt", b"x")
        stores = [open_store(url) for _ in range(clients)]
        watchers = [s.watch("", (".request",)) for s in stores]
        time.sleep(2)  # let every watcher connect before measuring
        cpu, requests = _cpu_seconds(pid), _requests_total(base)
        time.sleep(secs)  # the idle period being measured
        cpu, requests = _cpu_seconds(pid) - cpu, _requests_total(base) - requests
        for w in watchers:
            w.close()
        for s in stores:
            s.close()
    per_minute = 60 / secs
    print(
        f"idle: {files} files, {clients} watching clients, {secs:.0f} s: hub CPU "
        f"{cpu * per_minute:.3f} s/min, {requests * per_minute / clients:.2f} requests per "
        "client per minute"
    )


def _digits_seconds_per_round(work: Path, *flags: str) -> float:
    """Median seconds of a round (train + evaluate) after the first, from the run's table."""
    done = subprocess.run(
        [sys.executable, "-m", "fedbox", "simulate", str(DIGITS), "--clients", "3", *flags],
        capture_output=True, text=True, env={**os.environ, "FEDBOX_HOME": str(work)},
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"fedbox simulate failed:\n{done.stdout}\n{done.stderr}")
    rounds: dict[int, float] = {}
    for number, seconds in _ROUND_ROW.findall(done.stdout):
        rounds[int(number)] = rounds.get(int(number), 0.0) + float(seconds)
    return statistics.median(v for k, v in rounds.items() if k > 1)


def _fl(work: Path) -> None:
    hub = _digits_seconds_per_round(work / "fl-hub", "--hub")
    folder = _digits_seconds_per_round(work / "fl-folder")
    print(f"digits, 3 client processes, encrypted: s/round hub {hub:.3f}, folder {folder:.3f}")


def _rpc(url: str, base: str, work: Path, alice_home: Path, bob_home: Path, calls: int) -> None:
    print(f"{'via':>8} {'p50 ms':>9} {'p99 ms':>9} {'100 at once s':>12}")
    with Server(url, bob_home, [(BOB, False)]):  # type: ignore[arg-type]  # a URL root
        rtts, burst, per_call = _round_trips(url, alice_home, calls, lambda: _requests_total(base))
    print(_rpc_row("hub", rtts, burst), flush=True)
    folder = work / "folder"
    with Server(folder, work / "folder-home", [(BOB, False)]):
        local, local_burst, _ = _round_trips(str(folder), work / "folder-home", calls)
    print(_rpc_row("folder", local, local_burst), flush=True)
    print(
        f"hub/folder p50 {statistics.median(rtts) / statistics.median(local):.2f}, "
        f"burst {burst / local_burst:.2f}; {per_call:.2f} hub requests per round trip"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--idle-files", type=int, default=10_000)
    parser.add_argument("--idle-clients", type=int, default=50)
    parser.add_argument("--only", default=",".join(SECTIONS), help="Comma-separated sections.")
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="fedbox-bench-hub-"))
    port = _free_port()
    url, base = f"hub://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    hub = _start_hub(work / "hub", port)
    try:
        alice_home, bob_home = work / "alice", work / "bob"
        _login(url, ALICE, alice_home)
        _login(url, BOB, bob_home)
        if "rpc" in only:
            _rpc(url, base, work, alice_home, bob_home, args.calls)
        if "big" in only:
            _big_file(url, alice_home, work, args.big_mb)
        if "fl" in only:
            _fl(work)
        if "idle" in only:
            _idle(
                url, base, alice_home, hub.pid, args.idle_files, args.idle_clients,
                args.idle_seconds,
            )  # fmt: skip
    finally:
        hub.terminate()
        hub.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
