"""RPC behaviours that need control of time or of the files: expiry, cleanup, polling."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import fedbox
from fedbox.rpc import cleanup
from fedbox.testing import FakeClock


def test_expired_request_is_answered_419_and_never_runs(root: Path) -> None:
    clock = FakeClock()
    ran: list[str] = []
    with (
        fedbox.connect(root, "a@x.org", clock=clock) as a,
        fedbox.connect(root, "b@x.org", clock=clock) as b,
    ):
        fut = a.app("t").send("b@x.org", "echo", b"late", expires_in=30)
        clock.advance(31)
        server = b.app("t")
        server.on_request("echo")(lambda req: ran.append(req.id))
        server.start()
        resp = fut.wait(timeout=10)
        assert resp.status == fedbox.Status.EXPIRED == 419
        assert ran == []
        fresh = a.app("t").send("b@x.org", "echo", b"on time", expires_in=30).wait(timeout=10)
        assert fresh.status == 200 and len(ran) == 1
        with pytest.raises(fedbox.RemoteError) as info:
            resp.raise_for_status()
        assert info.value.status == 419


def test_wait_times_out_and_can_be_retried(root: Path) -> None:
    with fedbox.connect(root, "a@x.org") as a, fedbox.connect(root, "b@x.org") as b:
        fut = a.app("t").send("b@x.org", "echo", b"x")
        with pytest.raises(fedbox.ResponseTimeout):
            fut.wait(timeout=0.1)
        with pytest.raises(TimeoutError):
            fut.result()
        server = b.app("t")
        server.on_request("echo")(lambda req: req.body)
        server.start()
        assert fut.wait(timeout=10).body == b"x"


def test_polling_mode_round_trip(root: Path) -> None:
    kw = {"watch_mode": "poll", "poll_interval": 0.05}
    with fedbox.connect(root, "a@x.org", **kw) as a, fedbox.connect(root, "b@x.org", **kw) as b:
        server = b.app("t")
        server.on_request("echo")(lambda req: req.body.upper())
        server.start()
        futs = a.app("t").broadcast(["b@x.org"] * 5, "echo", b"poll")
        done, pending = a.wait(futs, timeout=20)
        assert not pending and {f.result().body for f in done} == {b"POLL"}


def test_wait_any_returns_first(root: Path) -> None:
    # Plaintext: c@x.org never connects, so it has no keys to encrypt to.
    with (
        fedbox.connect(root, "a@x.org", encrypt=False) as a,
        fedbox.connect(root, "b@x.org", encrypt=False) as b,
    ):
        server = b.app("t")
        server.on_request("echo")(lambda req: req.body)
        server.start()
        futs = [a.app("t").send("b@x.org", "echo", b"1"), a.app("t").send("c@x.org", "echo")]
        done, pending = a.wait(futs, timeout=10, return_when="any")
        assert [f.recipient for f in done] == ["b@x.org"]
        assert [f.recipient for f in pending] == ["c@x.org"]


def test_registering_twice_and_unknown_future_are_misuse(root: Path) -> None:
    with fedbox.connect(root, "a@x.org") as a:
        app = a.app("t")
        app.on_request("echo")(lambda req: b"")
        with pytest.raises(ValueError, match="already has a handler"):
            app.on_request("echo")(lambda req: b"")
        with pytest.raises(KeyError, match="no request with id"):
            app.future("0f3c9a51-64b5-4d8e-9a7e-1c2b3d4e5f60")


def test_handler_return_types(root: Path) -> None:
    with fedbox.connect(root, "a@x.org") as a, fedbox.connect(root, "b@x.org") as b:
        server = b.app("t")
        server.on_request("none")(lambda req: None)
        server.on_request("custom")(
            lambda req: fedbox.Response(body=b"c", status=201, headers={"k": "v"})
        )
        server.on_request("wrong")(lambda req: 42)
        server.start()
        app = a.app("t")
        assert app.send("b@x.org", "none").wait(10).body == b""
        custom = app.send("b@x.org", "custom").wait(10)
        assert (custom.status, custom.headers) == (201, {"k": "v"})
        wrong = app.send("b@x.org", "wrong").wait(10)
        assert wrong.status == 500 and b"expected bytes or Response" in wrong.body


def test_cleanup_removes_only_own_old_files_and_keeps_audit(root: Path) -> None:
    with fedbox.connect(root, "a@x.org") as a, fedbox.connect(root, "b@x.org") as b:
        server = b.app("t")
        server.on_request("echo")(lambda req: req.body)
        server.start()
        fut = a.app("t").send("b@x.org", "echo", b"x" * 10)
        fut.wait(10)
        files = sorted(root.rglob("*.re*"))
        assert len(files) == 2
        old = time.time() - 7200
        for f in files:
            os.utime(f, (old, old))
        report = cleanup(a.store, "a@x.org", 3600, time.time())
        assert report.files == 1
        assert [p.suffix for p in root.rglob("*.re*")] == [".response"]
        assert cleanup(b.store, "b@x.org", 3600, time.time()).files == 1
        assert list(root.rglob("*.re*")) == []
        rows = a.audit.records()
        assert [(r.id, r.status) for r in rows] == [(fut.id, 200)]


def test_a_request_sent_under_a_chosen_id_is_found_again_by_it(root: Path) -> None:
    chosen = "4b1e0c2a-9d3f-4e5a-8b6c-7d8e9f0a1b2c"
    with fedbox.connect(root, "a@x.org") as a, fedbox.connect(root, "b@x.org") as b:
        server = b.app("t")
        server.on_request("echo")(lambda req: req.id.encode())
        server.start()
        sent = a.app("t").send("b@x.org", "echo", b"x", id=chosen)
        assert sent.id == chosen
        sent.wait(timeout=60)  # answered before b stops serving
    with fedbox.connect(root, "a@x.org") as again:  # a later process re-attaches by that id
        assert again.app("t").future(chosen).wait(timeout=10).body == chosen.encode()
        with pytest.raises(fedbox.InvalidIdentity):
            again.app("t").send("b@x.org", "echo", id="../../etc")
