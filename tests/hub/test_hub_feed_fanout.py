"""Many websockets on one hub process: the change log is read once per wake-up for all of
them (the shared tail), each still sees exactly what its user may read, and a client
reconnecting with a cursor older than the tail gets its backlog from the log itself."""

from __future__ import annotations

import json
from contextlib import ExitStack

import httpx
import pytest
from hub_process import NO_LOGIN_LIMITS, HubProcess, client_for, login
from websockets.sync.client import ClientConnection, connect

A, B, C = "alice@x.org", "bob@x.org", "carol@x.org"
AB = f"syft_outbox_inbox_{A}_to_{B}/app/rpc/e"
AC = f"syft_outbox_inbox_{A}_to_{C}/app/rpc/e"
SOCKETS_PER_READER = 12
WRITES_PER_READER = 3


@pytest.fixture(scope="module")
def hub_args() -> tuple[str, ...]:
    """Each socket logs in afresh: more logins than the default limit allows."""
    return NO_LOGIN_LIMITS


@pytest.fixture(scope="module")
def alice(hub: HubProcess) -> httpx.Client:
    client = client_for(hub.url, A)
    # Something in the log before any feed opens: the tail then starts after it, and a
    # cursor of 0 is older than the tail.
    client.put(f"/api/v1/files/{AB}/before.request", content=b"0")
    return client


def _socket(hub: HubProcess, email: str, after: int, only: str = "") -> ClientConnection:
    token = login(hub.url, email)["access_token"]
    query = f"after={after}" + (f"&only={only}" if only else "")
    return connect(
        f"ws://127.0.0.1:{hub.port}/api/v1/changes/ws?{query}",
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=30,
    )


def _receive(socket: ClientConnection, count: int) -> list[str]:
    """The paths of the next ``count`` changes pushed (whole batches: nothing is dropped)."""
    got: list[str] = []
    while len(got) < count:
        got += [c["path"] for c in json.loads(socket.recv(timeout=30))["changes"]]
    return got


def _log_reads(hub: HubProcess) -> dict[str, int]:
    reads = {}
    for line in httpx.get(f"{hub.url}/metrics").text.splitlines():
        if line.startswith("fedbox_hub_feed_log_reads_total{"):
            reader = line.split('reader="', 1)[1].split('"', 1)[0]
            reads[reader] = int(line.rsplit(" ", 1)[1])
    return reads


def test_many_sockets_share_one_read_per_wake_and_see_only_theirs(
    hub: HubProcess, alice: httpx.Client
) -> None:
    start = alice.get("/healthz").json()["head"]
    with ExitStack() as stack:
        bobs = [stack.enter_context(_socket(hub, B, start)) for _ in range(SOCKETS_PER_READER)]
        carols = [stack.enter_context(_socket(hub, C, start)) for _ in range(SOCKETS_PER_READER)]
        picky = stack.enter_context(_socket(hub, B, start, only="**/f1.request"))
        before = _log_reads(hub)
        for n in range(WRITES_PER_READER):
            alice.put(f"/api/v1/files/{AB}/f{n}.request", content=b"b")
            alice.put(f"/api/v1/files/{AC}/f{n}.request", content=b"c")
        writes = 2 * WRITES_PER_READER
        for socket, folder in [(s, AB) for s in bobs] + [(s, AC) for s in carols]:
            assert _receive(socket, WRITES_PER_READER) == [
                f"{folder}/f{n}.request" for n in range(WRITES_PER_READER)
            ]
        assert _receive(picky, 1) == [f"{AB}/f1.request"]
        after = _log_reads(hub)
        # Nothing hidden came later either: the next push is the next readable change.
        alice.put(f"/api/v1/files/{AB}/last.request", content=b"b")
        alice.put(f"/api/v1/files/{AC}/last.request", content=b"c")
        assert {_receive(s, 1)[0] for s in bobs} == {f"{AB}/last.request"}
        assert {_receive(s, 1)[0] for s in carols} == {f"{AC}/last.request"}
    sockets = len(bobs) + len(carols) + 1
    tail_reads = after["tail"] - before.get("tail", 0)
    # A write wakes the feeds at most twice (its own commit, and the NOTIFY or head check
    # seen by the watcher); each wake is one read for all the sockets, never one each.
    assert 1 <= tail_reads <= 2 * writes + 1 < sockets
    assert after["cursor"] == before.get("cursor", 0), "no socket went to the log itself"


def test_a_cursor_older_than_the_tail_gets_its_backlog_from_the_log(
    hub: HubProcess, alice: httpx.Client
) -> None:
    head = alice.get("/healthz").json()["head"]
    with _socket(hub, B, head) as bob:  # the tail exists now, starting after 0
        alice.put(f"/api/v1/files/{AB}/live.request", content=b"x")
        assert _receive(bob, 1) == [f"{AB}/live.request"]
    everything = httpx.get(
        f"{hub.url}/api/v1/changes",
        params={"after": 0},
        headers={"Authorization": f"Bearer {login(hub.url, B)['access_token']}"},
    ).json()["changes"]
    assert f"{AB}/before.request" in [c["path"] for c in everything]
    before = _log_reads(hub)
    with _socket(hub, B, 0) as late:
        backlog = _receive(late, len(everything))
        alice.put(f"/api/v1/files/{AB}/after-reconnect.request", content=b"y")
        live = _receive(late, 1)
    assert backlog == [c["path"] for c in everything]
    assert live == [f"{AB}/after-reconnect.request"]
    assert _log_reads(hub)["cursor"] > before.get("cursor", 0)


def _wakeups(hub: HubProcess) -> int:
    for line in httpx.get(f"{hub.url}/metrics").text.splitlines():
        if line.startswith("fedbox_hub_feed_wakeups_total "):
            return int(line.rsplit(" ", 1)[1])
    raise AssertionError("no fedbox_hub_feed_wakeups_total in /metrics")


def test_an_outbox_write_wakes_only_its_parties_feeds(hub: HubProcess, alice: httpx.Client) -> None:
    """Carol's feeds sleep through Alice's messages to Bob (she may not read them) and
    still miss nothing after: her next push is her own message, her cursor past Bob's."""
    start = alice.get("/healthz").json()["head"]
    with ExitStack() as stack:
        bob = stack.enter_context(_socket(hub, B, start))
        carols = [stack.enter_context(_socket(hub, C, start)) for _ in range(SOCKETS_PER_READER)]
        before = _wakeups(hub)
        for n in range(WRITES_PER_READER):
            alice.put(f"/api/v1/files/{AB}/quiet{n}.request", content=b"b")
            assert _receive(bob, 1) == [f"{AB}/quiet{n}.request"]
        woken = _wakeups(hub) - before
        alice.put(f"/api/v1/files/{AC}/yours.request", content=b"c")
        for socket in carols:
            batch = json.loads(socket.recv(timeout=30))
            assert [c["path"] for c in batch["changes"]] == [f"{AC}/yours.request"]
            assert batch["cursor"] == alice.get("/healthz").json()["head"]
    # Bob's one feed is woken once or twice per write (its commit, the watcher's look);
    # waking Carol's twelve too would be at least 12 per write.
    assert woken <= 2 * WRITES_PER_READER < SOCKETS_PER_READER
