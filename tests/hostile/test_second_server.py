"""A second live server for one identity and app (issue 11.12).

Threat model: not an attacker but an operator's mistake (or a restarted machine with an
old process still running): two processes serve the same email's app, with one state
dir or with two, on one store. Both would handle every request. The second one must
refuse to start and say which process holds the app; a process that died (kill -9) must
not block its successor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from peer_process import PEER, killed_at_exit
from waiting import wait_until

import fedbox
from fedbox.rpc import lease as lease_module
from fedbox.rpc.lease import LEASE_TTL, lease_path


class Server:
    """``peer.py serve`` as b@x.org with its own FEDBOX_HOME: started, or refused."""

    def __init__(self, root: Path, home: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), "serve", str(root), "b@x.org", "t"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "FEDBOX_HOME": str(home)},
        )
        assert self.proc.stdout is not None
        self.ready = self.proc.stdout.readline().strip() == "ready"

    def refusal(self) -> str:
        """The last line of a refused server's error output."""
        assert not self.ready
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode != 0
        return err.strip().splitlines()[-1]

    def stop(self) -> dict:
        out, _ = self.proc.communicate("", timeout=60)
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def servers(root: Path):
    with killed_at_exit(partial(Server, root)) as start:
        yield start


def _call(root: Path, body: bytes) -> fedbox.Response:
    with fedbox.connect(root, "a@x.org", encrypt=False) as a:
        return a.app("t").send("b@x.org", "echo", body).wait(timeout=60)


def _second_refused(servers, first_home: Path, second_home: Path) -> tuple[Server, str]:
    """A first server, ready, and why a second one started beside it was refused."""
    first = servers(first_home)
    assert first.ready
    message = servers(second_home).refusal()
    assert "already serves app 't'" in message
    return first, message


def test_a_second_server_with_the_same_state_dir_is_refused(
    root: Path, fedbox_home: Path, servers
) -> None:
    first, message = _second_refused(servers, fedbox_home, fedbox_home)
    assert "RuntimeError" in message
    assert str(fedbox_home / "b@x.org") in message
    assert _call(root, b"one").body == b"one"
    assert first.stop() == {"handled": 1}


def test_a_second_server_with_another_state_dir_is_refused(
    root: Path, tmp_path: Path, fedbox_home: Path, servers
) -> None:
    first, message = _second_refused(servers, fedbox_home, tmp_path / "other-home")
    assert f"pid {first.proc.pid}" in message
    assert _call(root, b"one").body == b"one"
    assert first.stop() == {"handled": 1}
    assert not (root / lease_path("b@x.org", "t")).exists(), "a clean stop gives the lease up"
    third = servers(tmp_path / "other-home")
    assert third.ready
    assert _call(root, b"two").body == b"two"
    # "one" is answered again: a new state dir has no record of it, and "already
    # answered" is never read from a response file anyone could plant (issue 11.9).
    assert third.stop() == {"handled": 2}


def test_a_killed_server_does_not_block_the_next(
    root: Path, tmp_path: Path, fedbox_home: Path, servers
) -> None:
    first = servers(fedbox_home)
    assert first.ready
    first.kill()  # its lock goes with it, its lease stays behind
    assert (root / lease_path("b@x.org", "t")).exists()
    second = servers(tmp_path / "other-home")
    assert second.ready
    assert _call(root, b"after").body == b"after"
    assert second.stop() == {"handled": 1}


def test_a_killed_server_not_yet_reaped_does_not_block_the_next(
    root: Path, tmp_path: Path, fedbox_home: Path, servers
) -> None:
    """The clients of a killed ``simulate`` are zombies for a moment (nobody has reaped
    them yet): a restarted simulate's clients must not take them for live servers."""
    first = servers(fedbox_home)
    assert first.ready
    first.proc.send_signal(signal.SIGKILL)  # and not reaped: a zombie until wait()
    stat = Path(f"/proc/{first.proc.pid}/stat")
    wait_until(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", "a zombie")
    second = servers(tmp_path / "other-home")
    assert second.ready
    assert _call(root, b"after").body == b"after"
    assert second.stop() == {"handled": 1}
    first.proc.wait()


def test_two_boxes_of_one_process_cannot_serve_the_same_app(root: Path, tmp_path: Path) -> None:
    with (
        fedbox.connect(root, "b@x.org", encrypt=False) as b1,
        fedbox.connect(root, "b@x.org", state_dir=tmp_path / "elsewhere", encrypt=False) as b2,
    ):
        b1.app("t").start()
        with pytest.raises(RuntimeError, match="already serves app 't'"):
            b2.app("t").start()
        b2.app("u").start()  # another app is another server
        b1.app("t").stop()
        b2.app("t").start()  # the app is free again
        assert b2.app("t").running


def _plant_lease(root: Path, *, host: str, renewed: float) -> None:
    """A lease as a server on another machine would have written it."""
    path = root / lease_path("b@x.org", "t")
    path.parent.mkdir(parents=True, exist_ok=True)
    lease = {"instance": "0123456789abcdef", "host": host, "pid": 1, "renewed": renewed}
    path.write_text(json.dumps(lease))


def test_a_fresh_lease_from_another_host_refuses_and_an_old_one_does_not(root: Path) -> None:
    with fedbox.connect(root, "b@x.org", encrypt=False) as b:
        _plant_lease(root, host="elsewhere.example", renewed=time.time())
        with pytest.raises(RuntimeError, match=r"instance 0123456789abcdef .*elsewhere\.example"):
            b.app("t").start()
        _plant_lease(root, host="elsewhere.example", renewed=time.time() - LEASE_TTL - 1)
        b.app("t").start()
        assert b.app("t").running


def test_a_server_whose_lease_was_taken_stops_serving(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(lease_module, "LEASE_RENEWAL", 0.05)
    with fedbox.connect(root, "b@x.org", encrypt=False) as b:
        app = b.app("t")
        app.start()
        _plant_lease(root, host="elsewhere.example", renewed=time.time())  # it woke up first
        wait_until(lambda: not app.running, "the server to give app 't' up", timeout=30)
        assert "another server took app 't'" in caplog.text
        app.stop()
        assert (root / lease_path("b@x.org", "t")).exists(), "the other server's lease stays"
