"""fedbox.testing: its fakes behave like the real thing, and its checks catch faults."""

from __future__ import annotations

import io
import math
import time
from functools import partial
from pathlib import Path

import pytest
from waiting import wait_for, wait_until

import fedbox
from fedbox.datasite.paths import Kind, response_path
from fedbox.datasite.workspace import Workspace
from fedbox.rpc import Box
from fedbox.rpc.defaults import DEFAULT_EXPIRY
from fedbox.rpc.envelope import read_envelope, read_header
from fedbox.rpc.parts import MAGIC
from fedbox.rpc.payload import open_payload
from fedbox.store import LocalStore
from fedbox.testing import (
    FakeClock,
    MemoryStore,
    check_store,
    envelope_bytes,
    message_header,
    write_request,
)

pytest.importorskip("fsspec", reason="MemoryStore needs: pip install 'fedbox[remote]'")


def test_memory_store_passes_the_store_checks() -> None:
    check_store(MemoryStore)


def test_memory_stores_are_private_unless_shared() -> None:
    first, other = MemoryStore(), MemoryStore()
    first.put("a/f.request", b"mine")
    assert not other.exists("a/f.request")
    shared = MemoryStore(shared_with=first)
    assert shared.read("a/f.request") == b"mine"
    shared.put("b/g.request", b"back")
    assert first.read("b/g.request") == b"back"
    shared.close()
    assert first.read("a/f.request") == b"mine"  # closing one does not empty the other


class _ListsNoFolders(MemoryStore):
    def list_dirs(self, prefix: str = "") -> list[str]:
        """Sees no folders at all."""
        return []


class _LosesWrites(MemoryStore):
    def put(self, path: str, data: object) -> None:
        """Accepts the write and keeps nothing."""


@pytest.mark.parametrize(
    ("store_class", "check"),
    [
        (_ListsNoFolders, "list_dirs"),
        (_LosesWrites, "put_read_open_exists"),
    ],
)
def test_check_store_names_the_check_a_faulty_store_fails(store_class, check: str) -> None:
    with pytest.raises(AssertionError, match=f"store check '{check}' failed"):
        check_store(store_class)


def test_fake_clock_moves_only_forward_and_on_demand() -> None:
    clock = FakeClock(100.0)
    assert clock() == clock() == 100.0
    assert clock.advance(2.5) == 102.5 == clock()
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="finite"):
        clock.advance(math.inf)
    with pytest.raises(ValueError, match="finite"):
        FakeClock(math.nan)
    assert abs(FakeClock()() - time.time()) < 3600  # starts at the real time


def test_a_message_built_by_hand_reads_back_as_built() -> None:
    clock = FakeClock(1000.0)
    header = message_header(
        "b@x.org",
        "not an email",  # unchecked: tests address messages wrongly on purpose
        "t",
        "echo",
        kind=Kind.RESPONSE,
        status=403,
        expires_in=60,
        headers={"k": "v"},
        clock=clock,
    )
    read, body = read_envelope(io.BytesIO(envelope_bytes(header, b"refused")))
    assert body == b"refused"
    assert (read.kind, read.status, read.recipient, read.headers) == (
        "response",
        403,
        "not an email",
        {"k": "v"},
    )
    assert (read.created, read.expires) == (1000.0, 1060.0)
    by_default = message_header("a@x.org", "b@x.org", "t", "echo", created=5.0)
    assert by_default.expires == 5.0 + DEFAULT_EXPIRY


@pytest.mark.parametrize("body", [b"written by hand", MAGIC + b" and more"])
def test_a_hand_written_request_is_handled_by_a_running_app(
    root: Path, start_peer, body: bytes
) -> None:
    bob = start_peer("bob@b.org")
    store = LocalStore(root)
    msg_id = write_request(store, "alice@a.org", "bob@b.org", "t", "echo", body)
    path = str(response_path("alice@a.org", "bob@b.org", "t", "echo", msg_id))
    wait_for(root / path)
    f = store.open(path)
    header = read_header(f)
    with open_payload(
        store, f, header, writer="bob@b.org", reader="alice@a.org", sealer=None
    ) as payload:
        assert (header.status, payload.read()) == (200, body)
    assert bob.stop() == {"handled": 1}


def test_a_fake_clock_expires_a_request_without_sleeping() -> None:
    clock = FakeClock()
    store = MemoryStore()
    ran: list[str] = []
    send = ("alice@a.org", "bob@b.org", "t", "echo")
    late = write_request(store, *send, expires_in=60, clock=clock)
    clock.advance(61)
    fresh = write_request(store, *send, expires_in=60, clock=clock)
    bob = Box(MemoryStore(shared_with=store), Workspace.for_email("bob@b.org"), clock=clock)
    with bob:
        app = bob.app("t")
        app.on_request("echo")(lambda req: ran.append(req.id))
        app.start()
        statuses = {}
        for msg_id in (late, fresh):
            path = str(response_path("alice@a.org", "bob@b.org", "t", "echo", msg_id))
            wait_until(partial(store.exists, path), f"a response to {msg_id}", timeout=30)
            with store.open(path) as f:
                statuses[msg_id] = read_envelope(f)[0].status
    assert statuses == {late: fedbox.Status.EXPIRED, fresh: 200}
    assert ran == [fresh]  # the expired request never ran
