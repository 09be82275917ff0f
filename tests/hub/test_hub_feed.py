"""The change feed: HTTP after a cursor, the websocket push, reconnecting with a cursor."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import httpx
import pytest
from hub_process import NO_LOGIN_LIMITS, HubProcess, client_for, login
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

A, B, C = "alice@x.org", "bob@x.org", "carol@x.org"
AB = f"syft_outbox_inbox_{A}_to_{B}/app/rpc/e"
AC = f"syft_outbox_inbox_{A}_to_{C}/app/rpc/e"


@pytest.fixture(scope="module")
def hub_args() -> tuple[str, ...]:
    """Each socket logs in afresh: more logins than the default limit allows."""
    return NO_LOGIN_LIMITS


@pytest.fixture(scope="module")
def alice(hub: HubProcess) -> httpx.Client:
    return client_for(hub.url, A)


def _socket(hub: HubProcess, email: str, after: int, inline: int = 0) -> ClientConnection:
    token = login(hub.url, email)["access_token"]
    return connect(
        f"ws://127.0.0.1:{hub.port}/api/v1/changes/ws?after={after}&inline={inline}",
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=30,
    )


def _receive(socket: ClientConnection, count: int) -> list[dict]:
    """The next ``count`` changes pushed (batches may hold several)."""
    got: list[dict] = []
    while len(got) < count:
        got += json.loads(socket.recv(timeout=30))["changes"]
    return got


def test_http_feed_pages_with_a_cursor(hub: HubProcess, alice: httpx.Client) -> None:
    start = alice.get("/healthz").json()["head"]
    for n in range(5):
        alice.put(f"/api/v1/files/{AB}/f{n}.txt", content=b"x")
    first = alice.get("/api/v1/changes", params={"after": start, "limit": 3}).json()
    rest = alice.get("/api/v1/changes", params={"after": first["cursor"]}).json()
    paths = [c["path"] for c in first["changes"] + rest["changes"]]
    assert paths == [f"{AB}/f{n}.txt" for n in range(5)]
    assert alice.get("/api/v1/changes", params={"after": rest["cursor"]}).json()["changes"] == []


def test_feed_reports_moves_and_deletes(alice: httpx.Client) -> None:
    start = alice.get("/healthz").json()["head"]
    alice.put(f"/api/v1/files/{AB}/m.txt", content=b"x")
    alice.post("/api/v1/move", json={"src": f"{AB}/m.txt", "dst": f"{AB}/n.txt"})
    alice.delete(f"/api/v1/files/{AB}/n.txt")
    ops = [
        (c["op"], c["path"], c["old_path"])
        for c in alice.get("/api/v1/changes", params={"after": start}).json()["changes"]
    ]
    assert ops == [
        ("put", f"{AB}/m.txt", None),
        ("move", f"{AB}/n.txt", f"{AB}/m.txt"),
        ("delete", f"{AB}/n.txt", None),
    ]


def test_websocket_pushes_only_what_the_caller_may_read(
    hub: HubProcess, alice: httpx.Client
) -> None:
    start = alice.get("/healthz").json()["head"]
    with _socket(hub, B, start) as bob:
        alice.put(f"/api/v1/files/{AC}/for-carol.request", content=b"secret")
        alice.put(f"/api/v1/files/{AB}/for-bob.request", content=b"hello")
        pushed = _receive(bob, 1)
    assert [c["path"] for c in pushed] == [f"{AB}/for-bob.request"]


def test_websocket_carries_small_files_others_wrote_when_asked(
    hub: HubProcess, alice: httpx.Client
) -> None:
    start = alice.get("/healthz").json()["head"]
    alice.put(f"/api/v1/files/{AB}/gone.request", content=b"brief")
    alice.delete(f"/api/v1/files/{AB}/gone.request")  # before anyone is told of the put
    with (
        _socket(hub, B, start, inline=10) as bob,
        _socket(hub, A, start, inline=10) as writer,
        _socket(hub, B, start) as plain,
    ):
        alice.put(f"/api/v1/files/{AB}/small.request", content=b"hello")
        alice.put(f"/api/v1/files/{AB}/large.request", content=b"x" * 11)
        pushed = {(c["op"], c["path"].rsplit("/", 1)[1]): c["data"] for c in _receive(bob, 4)}
        own = [c["data"] for c in _receive(writer, 4)]
        unasked = [c["data"] for c in _receive(plain, 4)]
    assert base64.b64decode(pushed["put", "small.request"]) == b"hello"
    assert pushed["put", "large.request"] is None  # over the size asked for
    assert pushed["put", "gone.request"] is None  # replaced before it was pushed: fetch it
    assert own == [None] * 4, "the writer has its bytes already"
    assert unasked == [None] * 4


def test_reconnecting_with_the_cursor_misses_nothing(hub: HubProcess, alice: httpx.Client) -> None:
    start = alice.get("/healthz").json()["head"]
    with _socket(hub, B, start) as bob:
        alice.put(f"/api/v1/files/{AB}/r0.request", content=b"0")
        first = _receive(bob, 1)
    cursor = first[-1]["seq"]
    for n in range(1, 4):  # written while bob is offline
        alice.put(f"/api/v1/files/{AB}/r{n}.request", content=b"n")
    with _socket(hub, B, cursor) as bob:
        backlog = _receive(bob, 3)
        alice.put(f"/api/v1/files/{AB}/r4.request", content=b"4")
        live = _receive(bob, 1)
    paths = [c["path"] for c in first + backlog + live]
    assert paths == [f"{AB}/r{n}.request" for n in range(5)]


def test_a_revoked_session_is_closed_instead_of_pushed_to(
    hub: HubProcess, alice: httpx.Client
) -> None:
    """The session is checked before each push (not at each wake-up): once ``fedbox hub
    revoke`` has landed (within the hub's recheck, a second), the next change for the
    socket closes it with 4401 instead of reaching it."""
    dave = "dave@x.org"
    inbox = f"syft_outbox_inbox_{A}_to_{dave}/app/rpc/e"
    with _socket(hub, dave, alice.get("/healthz").json()["head"]) as socket:
        subprocess.run(
            [sys.executable, "-m", "fedbox", "hub", "revoke", dave, "--data", str(hub.data)],
            check=True, env=hub.env, capture_output=True,
        )  # fmt: skip
        with pytest.raises(ConnectionClosed) as closed:
            for n in range(300):  # pushes before the revocation lands are fine
                alice.put(f"/api/v1/files/{inbox}/{n}.request", content=b"x")
                socket.recv(timeout=30)
                time.sleep(0.1)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


def test_websocket_refuses_a_bad_token(hub: HubProcess) -> None:
    with (
        pytest.raises(ConnectionClosed) as closed,
        connect(
            f"ws://127.0.0.1:{hub.port}/api/v1/changes/ws",
            additional_headers={"Authorization": "Bearer garbage"},
            open_timeout=30,
        ) as socket,
    ):
        socket.recv(timeout=30)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


def test_metrics_count_open_websockets(hub: HubProcess, alice: httpx.Client) -> None:
    def gauge() -> int:
        text = httpx.get(f"{hub.url}/metrics").text
        line = next(x for x in text.splitlines() if x.startswith("fedbox_hub_websockets "))
        return int(line.split()[1])

    before = gauge()
    with _socket(hub, B, alice.get("/healthz").json()["head"]) as bob:
        alice.put(f"/api/v1/files/{AB}/g.request", content=b"x")
        _receive(bob, 1)
        assert gauge() == before + 1
