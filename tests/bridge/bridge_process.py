"""Real processes for the bridge tests: the owner's ``fedbox bridge serve`` and, for the
memory measurements, a caller that streams a large body one way and reports its peak
RSS (``python bridge_process.py ROOT OWNER APP download|upload SIZE``)."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def vm_hwm(pid: int) -> int:
    """Peak resident memory of a running process, bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/PID/status")


class OwnerProcess:
    """``fedbox bridge serve`` in its own process; ready once it prints ``serving``."""

    def __init__(self, root: str, email: str, app: str, *flags: str, env: dict | None = None):
        command = [sys.executable, "-m", "fedbox", "bridge", "serve", "--email", email]
        command += ["--root", root, "--app", app, "--app-dir", str(HERE), *flags]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "serving" not in line:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise RuntimeError(f"the bridge did not start: {line!r} {err[-2000:]}")

    @property
    def peak_rss(self) -> int:
        return vm_hwm(self.proc.pid)

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # Killed, not left running: a bridge still polling the session's in-process
            # S3 server made its allocations count in later tests' tracemalloc figures.
            self.proc.kill()
            self.proc.communicate()
            raise
        return self.proc.returncode


def _pattern(size: int):
    block = bytes(range(256)) * 4096
    left = size
    while left:
        n = min(left, len(block))
        yield block[:n]
        left -= n


def _main(root: str, owner: str, app: str, mode: str, size: int) -> None:
    import httpx

    import fedbox
    from fedbox.bridge import Transport

    with fedbox.connect(root, "big@example.org") as box:
        transport = Transport(box, owner, app)
        with httpx.Client(transport=transport, base_url="http://svc", timeout=600) as c:

            def download(n: int) -> dict:
                digest = hashlib.sha256()
                with c.stream("GET", f"/download/{n}") as r:
                    for piece in r.iter_bytes():
                        digest.update(piece)
                return {"status": r.status_code, "sha256": digest.hexdigest()}

            def upload(n: int) -> dict:
                r = c.post("/digest", content=_pattern(n))
                return {"status": r.status_code, **r.json()}

            step = download if mode == "download" else upload
            step(1 << 20)  # warm up: imports, keys, first allocations
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            result = step(size)
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({**result, "rss_before": before, "rss_after": after}))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
