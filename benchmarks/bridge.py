"""HTTP over files: a small JSON GET through the bridge beside the same app over a real
socket (uvicorn) and over ``httpx.ASGITransport``, beside fedbox's own RPC round trip on
a folder; and a large streamed response beside a plain file copy (issue 17).

Run: ``.venv/bin/python benchmarks/bridge.py [--calls 200] [--size 1GB]``

The owner is ``fedbox bridge serve --asgi bridge:app`` in its own process (this file is
also the application), the caller this process; store a local folder, fsync on. The
bridge rows run encrypted (the default) and with ``--no-encrypt``, the RPC rows the same
two ways, so each bridge row has its RPC round trip to compare with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from fedbox.testing.payload import repeated_block

HERE = Path(__file__).resolve().parent
OWNER, CALLER, NAME = "owner@bench.org", "caller@bench.org", "web"
CHUNK = 1 << 20

app = FastAPI()


@app.get("/item/{item_id}")
def item(item_id: int) -> dict:
    return {"id": item_id, "name": "widget", "tags": ["a", "b"], "price": 9.5}


@app.post("/count")
async def count(request: Request) -> dict:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"size": size}


@app.get("/bytes/{size}")
def stream_bytes(size: int) -> StreamingResponse:
    chunks = repeated_block(os.urandom(CHUNK), size)
    return StreamingResponse(chunks, media_type="application/octet-stream")


def _stats(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return p50 * 1000, p99 * 1000


def _timed(call: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(5):
        call()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return _stats(times)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) << 10
    return 0


class _Owner:
    def __init__(self, root: Path, *flags: str) -> None:
        command = [sys.executable, "-m", "fedbox", "bridge", "serve", "--email", OWNER]
        command += ["--root", str(root), "--app", NAME, "--asgi", "bridge:app"]
        self.proc = subprocess.Popen(
            [*command, "--app-dir", str(HERE), *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # its first-contact warnings
            text=True,
        )
        assert self.proc.stdout is not None
        if "serving" not in self.proc.stdout.readline():
            raise RuntimeError("the bridge did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def _bridge_rows(work: Path, calls: int, encrypt: bool) -> tuple[float, float]:
    import httpx

    import fedbox
    from fedbox.bridge import Transport

    root = work / ("store-enc" if encrypt else "store-plain")
    root.mkdir()
    with fedbox.connect(root, OWNER, encrypt=encrypt):
        pass  # keys published before the caller's first request
    owner = _Owner(root, *([] if encrypt else ["--no-encrypt"]))
    try:
        with fedbox.connect(root, CALLER, encrypt=encrypt) as box:
            transport = Transport(box, OWNER, NAME)
            with httpx.Client(transport=transport, base_url="http://web", timeout=60) as c:
                return _timed(lambda: c.get("/item/3").raise_for_status(), calls)
    finally:
        owner.stop()


def _rpc_rows(work: Path, calls: int, encrypt: bool) -> tuple[float, float]:
    sys.path.insert(0, str(HERE))
    from _common import APP, Server

    import fedbox

    root = work / ("rpc-enc" if encrypt else "rpc-plain")
    server = Server(root, work / "home", [("server@bench.org", encrypt)])
    with server, fedbox.connect(root, "client@bench.org", encrypt=encrypt) as box:
        rpc = box.app(APP)
        body = json.dumps({"id": 3}).encode()
        return _timed(lambda: rpc.send("server@bench.org", "echo", body).wait(60), calls)


def _uvicorn_rows(calls: int) -> tuple[float, float]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "uvicorn", "bridge:app", "--port", str(port)]
    proc = subprocess.Popen([*command, "--app-dir", str(HERE), "--log-level", "warning"])
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            return _timed(lambda: c.get("/item/3").raise_for_status(), calls)
    finally:
        proc.terminate()
        proc.wait(30)


def _asgi_rows(calls: int) -> tuple[float, float]:
    import httpx

    async def run() -> tuple[float, float]:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as c:
            for _ in range(5):
                await c.get("/item/3")
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                (await c.get("/item/3")).raise_for_status()
                times.append(time.perf_counter() - start)
            return _stats(times)

    return asyncio.run(run())


def _blocks(size: int) -> Iterator[bytes]:
    block = os.urandom(CHUNK)
    for start in range(0, size, CHUNK):
        yield block[: min(CHUNK, size - start)]


def _large(work: Path, size: int) -> None:
    import httpx

    import fedbox
    from fedbox.bridge import Transport

    root = work / "store-large"
    root.mkdir()
    with fedbox.connect(root, OWNER):
        pass
    owner = _Owner(root)
    try:
        with fedbox.connect(root, CALLER) as box:
            transport = Transport(box, OWNER, NAME)
            with httpx.Client(transport=transport, base_url="http://web", timeout=3600) as c:
                c.get("/bytes/1048576").raise_for_status()  # warm up
                c.post("/count", content=_blocks(1 << 20)).raise_for_status()
                caller_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
                owner_before = _peak_rss(owner.proc.pid)
                start = time.perf_counter()
                got = 0
                with c.stream("GET", f"/bytes/{size}") as r:
                    for piece in r.iter_raw():
                        got += len(piece)
                elapsed = time.perf_counter() - start
                start = time.perf_counter()
                sent = c.post("/count", content=_blocks(size)).json()["size"]
                uploaded = time.perf_counter() - start
                caller_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
                owner_after = _peak_rss(owner.proc.pid)
        assert got == size == sent, (got, sent, size)
    finally:
        owner.stop()
    source, copy = work / "plain.bin", work / "plain-copy.bin"
    with open(source, "wb") as f:
        block = os.urandom(CHUNK)
        for start_at in range(0, size, CHUNK):
            f.write(block[: min(CHUNK, size - start_at)])
        f.flush()
        os.fsync(f.fileno())
    start = time.perf_counter()
    with open(source, "rb") as src, open(copy, "wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)
        dst.flush()
        os.fsync(dst.fileno())
    copied = time.perf_counter() - start
    mb = size / 1e6
    print(f"\n{size / 1e9:.2f} GB streamed response and upload (encrypted, folder):")
    print(f"  bridge down {elapsed:7.2f} s  {mb / elapsed:7.1f} MB/s")
    print(f"  bridge up   {uploaded:7.2f} s  {mb / uploaded:7.1f} MB/s  (an upload, same size)")
    print(f"  file copy   {copied:7.2f} s  {mb / copied:7.1f} MB/s  (read + write + fsync)")
    print(f"  peak RSS growth, both: caller {(caller_after - caller_before) / 2**20:.1f} MiB,")
    print(f"                         owner {(owner_after - owner_before) / 2**20:.1f} MiB")


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # not the first-contact warnings
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--size", default="1GB", help="large body size, each way (e.g. 1GB, 200MB)")
    args = parser.parse_args()
    from fedbox.sizes import parse_size

    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="fedbox-bench-bridge-"))
    os.environ["FEDBOX_HOME"] = str(work / "home")
    try:
        print(f"small JSON GET, {args.calls} sequential calls, store {work}")
        print(f"{'path':<40} {'p50 ms':>8} {'p99 ms':>8}")
        rows = [
            ("httpx.ASGITransport (in-process)", lambda: _asgi_rows(args.calls)),
            ("uvicorn, real socket", lambda: _uvicorn_rows(args.calls)),
            ("fedbox RPC round trip, plain", lambda: _rpc_rows(work, args.calls, False)),
            ("bridge, plain (--no-encrypt)", lambda: _bridge_rows(work, args.calls, False)),
            ("fedbox RPC round trip, encrypted", lambda: _rpc_rows(work, args.calls, True)),
            ("bridge, encrypted", lambda: _bridge_rows(work, args.calls, True)),
        ]
        for label, run in rows:
            p50, p99 = run()
            print(f"{label:<40} {p50:8.2f} {p99:8.2f}", flush=True)
        _large(work, size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
