"""Several processes of one hub: clients on different processes talk to each other, and
a client whose process dies moves to the next one its root lists (``hub://h1,h2``).

The FL run is ``fedbox simulate --root hub://P1,P2`` over a ``--dev`` cluster: every
participant starts on the first process; it is killed (SIGKILL, mid-round) and the run
must complete on the second, every client answering every round once.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hub_process import HubProcess

from fedbox.datasite.workspace import Workspace
from fedbox.hub.credentials import base_urls, login, request_code
from fedbox.rpc import Box
from fedbox.store import open_store
from fedbox.testing.echo import serve_counted_echo

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from hub_cluster import HubCluster

ALICE, BOB = "alice@lab.org", "bob@hospital.org"
PUBLIC = b'rules:\n  - pattern: "**"\n    access: {read: ["*"]}\n'
DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def _root(*procs: HubProcess) -> str:
    return "hub://" + ",".join(f"127.0.0.1:{p.port}" for p in procs)


def _login(root: str, email: str) -> None:
    code = request_code(root, email)
    assert code is not None
    login(root, email, code)


def test_several_processes_in_a_root_are_one_login() -> None:
    assert base_urls("hub://a:1,b:2/datasites") == ["http://a:1", "http://b:2"]
    assert base_urls("hubs://a:1") == ["https://a:1"]
    for bad in ("hub://a:1,,b:2", "hub://a:x", "ftp://a:1"):
        with pytest.raises(ValueError, match="not a hub URL"):
            base_urls(bad)


def test_a_client_on_each_process_talks_rpc_and_both_see_one_feed(
    make_cluster: Callable[..., HubCluster], fedbox_home: Path
) -> None:
    cluster = make_cluster()
    one, two = (_root(p) for p in cluster.procs)
    for root, email in ((one, ALICE), (two, BOB)):
        _login(root, email)
        with open_store(root, email=email) as store:
            store.put(f"datasites/{email}/public/syft.pub.yaml", PUBLIC)
    with (
        Box(open_store(one, email=ALICE), Workspace.for_email(ALICE), encrypt=True) as alice,
        Box(open_store(two, email=BOB), Workspace.for_email(BOB), encrypt=True) as bob,
    ):
        handled = serve_counted_echo(bob.app("echo"))
        app = alice.app("echo")
        futures = [app.send(BOB, "echo", f"request {i}".encode()) for i in range(20)]
        _, pending = alice.wait(futures, timeout=120)
        assert not pending
        assert all(f.result().body == f"request {i}".encode()[::-1] for i, f in enumerate(futures))
        assert handled == Counter({f.id: 1 for f in futures})
    feeds = []
    for proc in cluster.procs:
        with httpx.Client(base_url=proc.url) as client:
            code = client.post("/api/v1/auth/code", json={"email": ALICE}).json()["code"]
            token = client.post("/api/v1/auth/token", json={"email": ALICE, "code": code})
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            feeds.append(client.get("/api/v1/changes", headers=headers).json())
    assert feeds[0] == feeds[1]
    assert len(feeds[0]["changes"]) > 40  # both requests and responses, seen the same way


def test_a_client_moves_to_the_next_process_when_its_own_dies(
    make_cluster: Callable[..., HubCluster], fedbox_home: Path
) -> None:
    cluster = make_cluster()
    root = cluster.root
    _login(root, ALICE)
    _login(root, BOB)
    with open_store(root, email=ALICE) as alice, open_store(root, email=BOB) as bob:
        alice.put(f"datasites/{ALICE}/syft.pub.yaml", PUBLIC)
        watcher = bob.watch(f"datasites/{ALICE}", suffixes=(".txt",))
        alice.put(f"datasites/{ALICE}/before.txt", b"1")
        assert watcher.next_batch(timeout=30) == {f"datasites/{ALICE}/before.txt"}
        cluster.procs[0].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        alice.put(f"datasites/{ALICE}/after.txt", b"2")
        assert bob.read(f"datasites/{ALICE}/after.txt") == b"2"
        got: set[str] = set()
        deadline = time.monotonic() + 60
        while f"datasites/{ALICE}/after.txt" not in got and time.monotonic() < deadline:
            got |= watcher.next_batch(timeout=5)
        watcher.close()
        assert got == {f"datasites/{ALICE}/after.txt"}  # pushed through the survivor


def test_an_fl_run_survives_the_death_of_the_hub_process_everyone_uses(
    make_cluster: Callable[..., HubCluster], fedbox_home: Path
) -> None:
    cluster = make_cluster()
    run = subprocess.Popen(
        [sys.executable, "-m", "fedbox", "simulate", str(DIGITS), "--clients", "3",
         "--root", cluster.root],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    first = cluster.procs[0]
    with httpx.Client(base_url=first.url) as client:
        deadline = time.monotonic() + 240
        while int(client.get("/healthz").json()["head"]) < 60:  # a few rounds in
            assert run.poll() is None and time.monotonic() < deadline, run.stdout
            time.sleep(0.2)  # polling the hub's head: the run gives no event to wait on
    first.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    out, _ = run.communicate(timeout=600)
    assert run.returncode == 0, out
    accuracy = re.search(r"final test accuracy ([0-9.]+)", out)
    assert accuracy and float(accuracy.group(1)) >= 0.9, out
    for i in range(3):
        assert re.search(rf"client-{i}@sim\.fedbox\s+│ yes\s+│ 10/10 ", out), out
