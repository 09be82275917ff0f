"""A small real world for the UI's tests: two identities that called each other over a
real folder store, a published dataset, jobs submitted to its owner, a run record written
by a real process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

from echo_app import serve_echo

import fedbox
from fedbox.crypto import Identity
from fedbox.crypto.keys import did_document
from fedbox.datasite.workspace import Workspace
from fedbox.rds.datasets import create_dataset
from fedbox.rds.owner import Owner
from fedbox.rds.package import pack
from fedbox.rpc.sealing import did_path
from fedbox.store import LocalStore

SCREENSHOT_DIRS: list[Path] = []
"""Where the browser tests saved their screenshots, for the terminal summary."""
ME = "owner@x.org"
PEER = "sci@x.org"


@dataclass
class World:
    root: Path
    state: Path
    jobs: list[str]


def build_world(tmp: Path) -> World:
    """ME served PEER's echo call and called PEER back (encrypted), owns a dataset and has
    two jobs from PEER waiting for review."""
    root = tmp / "store"
    root.mkdir(exist_ok=True)
    with fedbox.connect(root, ME) as me, fedbox.connect(root, PEER) as peer:
        serve_echo(me)
        serve_echo(peer)
        assert peer.app("t").send(ME, "echo", b"hello owner").wait(timeout=30).status == 200
        assert me.app("t").send(PEER, "echo", b"hello sci").wait(timeout=30).status == 200
    workspace = Workspace.for_email(ME).ensure()
    private, mock, code = tmp / "private", tmp / "mock", tmp / "code"
    for folder in (private, mock, code):
        folder.mkdir()
    (private / "data.csv").write_text("x\n1\n2\n")
    (mock / "data.csv").write_text("x\n0\n")
    (code / "main.py").write_text(
        "import os\n"
        "from pathlib import Path\n\n"
        "rows = (Path(os.environ['DATA_DIR']) / 'data.csv').read_text().splitlines()\n"
        "print('rows', len(rows))\n"
    )
    store = LocalStore(root)
    try:
        create_dataset(store, workspace, "census", private=private, mock=mock, description="toy")
    finally:
        store.close()
    jobs = []
    with Owner(workspace) as owner:
        for _ in range(2):
            job_id = str(uuid.uuid4())
            package, _ = pack(code, entry="python main.py", dataset="census")
            owner.receive(job_id, PEER, package)
            jobs.append(job_id)
    return World(root, workspace.state_dir, jobs)


def change_peer_key(root: Path) -> str:
    """PEER reset their keys: a new identity key published in their place; its
    fingerprint."""
    bundle = Identity.generate(PEER).public_bundle()
    store = LocalStore(root)
    try:
        store.put(did_path(PEER), json.dumps(did_document(bundle)).encode())
    finally:
        store.close()
    return bundle.fingerprint


RUN_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fedbox.fl.record import RunRecord

    state, rounds = Path(sys.argv[1]), int(sys.argv[2])
    rec = RunRecord.create(
        state, "demo-run", key="k", app="digits", seed=1,
        run_config={"num-server-rounds": rounds}, datasites=["a@x.org", "b@x.org"],
    )
    print("started", flush=True)
    for r in range(1, rounds + 1):
        sys.stdin.readline()
        ids = [f"m{r}a", f"m{r}b"]
        msgs = [(ids[0], 1, "a@x.org", "train", str(r), f"d{r}"),
                (ids[1], 2, "b@x.org", "train", str(r), f"d{r}")]
        rec.add_push([["a"], ["b"]], ids, msgs, {f"d{r}": ([b"content"], 7)}, str(r))
        rec.keep_replies([(ids[0], b"r"), (ids[1], b"r")])
        rec.add_replies("receive", ids, {}, [
            (ids[0], "reply", None, {"loss": 1.0 / r, "num-examples": 10.0}),
            (ids[1], "reply", None, {"loss": 2.0 / r, "num-examples": 10.0}),
        ])
        print("round", r, flush=True)
    sys.stdin.readline()
    rec.set_status("finished")
    rec.close()
    print("finished", flush=True)
    """
)


class RunWriter:
    """An aggregator-side run record written round by round by a real process, one round
    each time :meth:`step` is called."""

    def __init__(self, state: Path, rounds: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUN_WRITER, str(state), str(rounds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._expect("started")

    def _expect(self, prefix: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith(prefix), f"run writer said {line!r}, expected {prefix!r}"

    def step(self, expect: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        self._expect(expect)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
