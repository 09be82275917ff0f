"""Shared by the benchmarks: a serving participant in its own process, percentiles, memory.

Not a module users import: run the benchmarks as scripts (``python benchmarks/x.py``),
which puts this folder on ``sys.path``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
from collections.abc import Sequence
from pathlib import Path

import fedbox

APP = "bench"


def _serve(root: str, home: str, boxes: Sequence[tuple[str, bool]], ready, stop) -> None:
    os.environ["FEDBOX_HOME"] = home
    opened = [fedbox.connect(root, email, encrypt=encrypt) for email, encrypt in boxes]
    try:
        for box in opened:
            app = box.app(APP)
            app.on_request("echo")(lambda req: req.body)
            app.on_request("memory")(lambda req: json.dumps(take_peak_rss()).encode())
            app.start()
        ready.set()
        stop.wait()
    finally:
        for box in opened:
            box.close()


class Server:
    """Participants answering ``echo`` (and ``memory``: this process's peak RSS, then reset)
    in a separate spawned process, one box per ``(email, encrypt)``."""

    def __init__(self, root: Path, home: Path, boxes: Sequence[tuple[str, bool]]) -> None:
        ctx = mp.get_context("spawn")
        self._ready, self._stop = ctx.Event(), ctx.Event()
        self.process = ctx.Process(
            target=_serve, args=(str(root), str(home), list(boxes), self._ready, self._stop)
        )

    def __enter__(self) -> Server:
        self.process.start()
        if not self._ready.wait(120):
            raise RuntimeError("benchmark server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.process.join(30)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def take_peak_rss() -> dict[str, int | bool]:
    """Peak and current RSS in bytes, then reset the peak when the OS allows it.

    Linux keeps the peak in ``VmHWM``, reset by writing 5 to ``/proc/self/clear_refs``;
    elsewhere the peak is ``ru_maxrss`` for the whole process life (``reset`` is False).
    """
    peak_kb = _status_kb("VmHWM")
    if peak_kb is None:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_kb = _status_kb("VmRSS") or 0
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    return {"peak": peak_kb * 1024, "rss": rss_kb * 1024, "reset": reset}
