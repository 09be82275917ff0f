"""A junk flood from one sender (issue 11.7).

Threat model: a participant that can write its own folder into our inbox (C -> B) writes
any number of junk request files. It may cost the recipient the work of refusing each one
(denial of service by volume is possible, and documented), but it must not delay another
sender's request by more than a few files per handler thread, and the recipient's memory
must not grow with the size of the flood.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import fedbox

THREADS = 4


def _junk(root: Path, sender: str, count: int) -> Path:
    """``count`` empty request files from ``sender`` to b; returns their folder."""
    folder = root / f"syft_outbox_inbox_{sender}_to_b@x.org" / "t" / "rpc" / "echo"
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(count):
        (folder / f"{uuid.uuid4()}.request").touch()
    return folder


def test_another_senders_request_is_not_starved_by_a_flood(root: Path) -> None:
    junk = _junk(root, "c@x.org", 5000)
    quarantined = junk / ".quarantine"
    with fedbox.connect(root, "z@x.org", encrypt=False) as z:  # sorts after c: listed last
        fut = z.app("t").send("b@x.org", "echo", b"hello")
    seen: list[int] = []
    with fedbox.connect(root, "b@x.org", handler_threads=THREADS, encrypt=False) as b:
        server = b.app("t")

        @server.on_request("echo")
        def echo(req: fedbox.Request) -> bytes:
            seen.append(len(os.listdir(quarantined)) if quarantined.exists() else 0)
            return req.body

        server.start()
        with fedbox.connect(root, "z@x.org", encrypt=False) as z:
            assert z.app("t").future(fut.id).wait(timeout=120).body == b"hello"
    assert len(seen) == 1
    assert seen[0] <= 10 * THREADS, f"{seen[0]} junk files were handled before z's request"


_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, time, uuid
    from pathlib import Path
    import fedbox

    root = Path(sys.argv[1])

    def junk(sender, count):
        folder = root / f"syft_outbox_inbox_{sender}_to_b@x.org" / "t" / "rpc" / "echo"
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            (folder / f"{uuid.uuid4()}.request").touch()

    def left():
        return sum(1 for _ in root.glob("*/t/rpc/echo/*.request"))

    junk("c@x.org", 2000)
    junk("d@x.org", 300)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with fedbox.connect(root, "b@x.org", handler_threads=4, encrypt=False) as b:
        app = b.app("t")
        app.on_request("echo")(lambda req: req.body)
        app.start()
        junk("c@x.org", 1000)  # while serving: reported by the watcher, overflowing
        deadline = time.monotonic() + 300
        while left() and time.monotonic() < deadline:
            time.sleep(0.05)
        out = {"left": left(), "peak": app.backlog_peak}
    out["rss_growth_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps(out))
    """
)


def test_memory_stays_bounded_during_a_flood(root: Path) -> None:
    depth = 64
    env = {**os.environ, "FEDBOX_QUEUE_DEPTH": str(depth)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["left"] == 0, "every junk file is refused in the end"
    assert out["peak"] <= 2 * depth, f"{out['peak']} request paths were held at once"
    assert out["rss_growth_kb"] < 100_000
