"""``fedbox sync`` on loopback: propagation latency, a burst, a first sync, an idle restart.

Run: ``.venv/bin/python benchmarks/sync.py [--samples 200] [--burst 1000] [--files 2000]
[--file-kb 10] [--no-first-sync]`` (``--files 10000`` is the issue's 10,000 files / 100 MB).

A ``fedbox hub serve --dev`` process and two ``fedbox sync`` daemons (Alice's folder and
Bob's), each a process of its own, on 127.0.0.1. Alice's files go under her
``public/`` (everyone reads it), so each one travels folder -> hub -> folder.

- latency: a 1 KB file renamed into Alice's folder until it is whole in Bob's (p50/p99;
  goal p50 <= 20 ms);
- burst: 1,000 x 1 KB written at once, until all are in Bob's folder (goal < 2 s);
- first sync: ``--files`` files uploaded by ``fedbox sync --once`` from a full folder,
  then downloaded by another ``--once`` into an empty one: seconds, and hub requests per
  file (from the hub's /metrics);
- restart: ``--once`` again with nothing changed: requests sent (goal O(1)).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import percentile

from fedbox.hub.credentials import login, request_code

ALICE, BOB = "alice@bench.org", "bob@bench.org"
RULES = 'rules:\n  - pattern: "public/**"\n    access: {read: ["*"]}\n'
PUBLIC = f"datasites/{ALICE}/public"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(condition: object, what: str, timeout: float = 600, step: float = 0.0005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(step)  # a benchmark's poll: 0.5 ms resolution


def _requests(url: str) -> int:
    text = httpx.get(f"{url}/metrics").text
    return sum(int(n) for n in re.findall(r"^fedbox_hub_requests_total\{.*\} (\d+)$", text, re.M))


def _sync(url: str, email: str, folder: Path, *flags: str) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedbox",
            "sync",
            "--hub",
            url,
            "--email",
            email,
            "--dir",
            str(folder),
            "--min-free",
            "0",
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _once(url: str, email: str, folder: Path) -> tuple[float, int]:
    """Seconds for ``fedbox sync --once`` (process start included) and requests it sent."""
    before = _requests(url)
    start = time.perf_counter()
    done = _sync(url, email, folder, "--once").wait()
    seconds = time.perf_counter() - start
    if done != 0:
        raise RuntimeError(f"fedbox sync --once exited {done}")
    return seconds, _requests(url) - before


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_idle(folder: Path) -> bool:
    status = folder / ".fedbox-sync" / "status.json"
    return status.is_file() and '"caught_up": true' in status.read_text()


def _put(folder: Path, name: str, data: bytes) -> None:
    """Written beside, then renamed in: the daemon sees the file whole."""
    temp = folder / f".{name}.tmp"
    temp.write_bytes(data)
    os.rename(temp, folder / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--file-kb", type=int, default=10)
    parser.add_argument(
        "--no-first-sync", action="store_true", help="stop after the latency and the burst"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fedbox-sync-bench-"))
    os.environ["FEDBOX_HOME"] = str(work / "home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedbox",
            "hub",
            "serve",
            "--data",
            str(work / "hub"),
            "--port",
            str(port),
            "--dev",
            "--login-per-email",
            "100000",
            "--login-per-address",
            "100000",
        ],
    )
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        _wait(lambda: _healthy(url), "the hub", timeout=60, step=0.05)
        for who in (ALICE, BOB):
            login(url, who, request_code(url, who) or "")
        a_dir, b_dir = work / "alice", work / "bob"
        (a_dir / PUBLIC).mkdir(parents=True)
        (a_dir / f"datasites/{ALICE}/syft.pub.yaml").write_text(RULES)
        daemons += [_sync(url, ALICE, a_dir), _sync(url, BOB, b_dir)]
        _wait(lambda: _status_idle(a_dir) and _status_idle(b_dir), "the daemons", step=0.05)
        print(f"fedbox sync on loopback (hub pid {hub.pid}; {os.cpu_count()} cores)")

        lat_src, lat_dst = a_dir / PUBLIC / "lat", b_dir / PUBLIC / "lat"
        lat_src.mkdir()
        payload = os.urandom(1024)
        times = []
        for i in range(args.samples + 5):
            name = f"{i:05}.bin"
            start = time.perf_counter()
            _put(lat_src, name, payload)
            target = lat_dst / name
            _wait(target.exists, "a propagated file")
            if i >= 5:  # warm-up
                times.append((time.perf_counter() - start) * 1000)
        reference = _put_get(url, payload, args.samples)
        print(
            f"reference, one client's PUT then GET of 1 KB over HTTP: p50 "
            f"{percentile(reference, 0.5):.1f} ms, p99 {percentile(reference, 0.99):.1f} ms"
        )
        print(
            f"1 KB propagation folder->hub->folder: p50 {percentile(times, 0.5):.1f} ms, "
            f"p99 {percentile(times, 0.99):.1f} ms ({args.samples} samples; goal p50 <= 20 ms)"
        )

        burst_src, burst_dst = a_dir / PUBLIC / "burst", b_dir / PUBLIC / "burst"
        burst_src.mkdir()
        before = _requests(url)
        pids = {"hub": hub.pid, "alice's daemon": daemons[0].pid, "bob's daemon": daemons[1].pid}
        cpu = {who: _cpu_seconds(pid) for who, pid in pids.items()}
        start = time.perf_counter()
        for i in range(args.burst):
            _put(burst_src, f"{i:05}.bin", payload)
        _wait(
            lambda: burst_dst.is_dir() and len(os.listdir(burst_dst)) == args.burst,
            "the burst",
            step=0.005,
        )
        burst = time.perf_counter() - start
        sent = _requests(url) - before - 1  # this count's own /metrics request
        print(
            f"{args.burst} x 1 KB at once: all in the other folder after {burst:.2f} s "
            f"(goal < 2 s), {sent} hub requests"
        )
        _wait(lambda: _status_idle(a_dir) and _status_idle(b_dir), "the daemons", step=0.05)
        used = {who: _cpu_seconds(pid) - cpu[who] for who, pid in pids.items()}
        print(
            "  CPU seconds for the burst: "
            + ", ".join(f"{who} {seconds:.2f}" for who, seconds in used.items())
        )

        for proc in daemons:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        daemons.clear()
        if args.no_first_sync:
            return
        bulk = a_dir / PUBLIC / "bulk"
        bulk.mkdir()
        for i in range(args.files):
            (bulk / f"{i // 1000:03}").mkdir(exist_ok=True)
            (bulk / f"{i // 1000:03}" / f"{i:06}.bin").write_bytes(os.urandom(args.file_kb << 10))
        mb = args.files * args.file_kb / 1024
        up_s, up_n = _once(url, ALICE, a_dir)
        print(
            f"first sync up:   {args.files} files ({mb:.0f} MB) in {up_s:.1f} s, "
            f"{up_n / args.files:.2f} requests per file"
        )
        fresh = work / "carol-view"
        down_s, down_n = _once(url, BOB, fresh)
        got = sum(len(files) for _, _, files in os.walk(fresh / "datasites"))
        print(
            f"first sync down: {got} files (the bulk's {mb:.0f} MB and the files above) in "
            f"{down_s:.1f} s, {down_n / got:.2f} requests per file"
        )
        again_s, again_n = _once(url, BOB, fresh)
        print(
            f"restart, nothing changed: {again_n} requests, {again_s:.1f} s "
            f"(process start included; goal O(1))"
        )
    finally:
        for proc in [*daemons, hub]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def _put_get(url: str, payload: bytes, samples: int) -> list[float]:
    """The floor under a propagation: Alice's PUT and a GET of the same file, in ms."""
    from fedbox.hub.credentials import find_login

    token = find_login(url, ALICE).access_token
    times = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for i in range(samples + 5):
            path = f"/api/v1/files/datasites/{ALICE}/ref/{i}.bin"
            start = time.perf_counter()
            client.put(path, content=payload).raise_for_status()
            client.get(path).raise_for_status()
            if i >= 5:
                times.append((time.perf_counter() - start) * 1000)
    return times


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


if __name__ == "__main__":
    main()
