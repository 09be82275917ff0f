"""``hub://`` stores: fedbox login, the store conformance checks, and RPC through a hub."""

from __future__ import annotations

import itertools
import os
import stat
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from hub_process import NO_LOGIN_LIMITS, HubProcess
from waiting import wait_until

from fedbox.datasite.paths import Kind, request_path, response_path
from fedbox.datasite.workspace import Workspace
from fedbox.errors import CorruptMessage, ResponseTimeout, StoreError
from fedbox.hub.credentials import login, request_code
from fedbox.rpc import App, Box, Future
from fedbox.rpc.envelope import read_header
from fedbox.store import open_store
from fedbox.testing import envelope_bytes, message_header
from fedbox.testing.echo import serve_counted_echo
from fedbox.testing.store_checks import STORE_CHECKS, check_store

ALICE, BOB = "alice@lab.org", "bob@hospital.org"
_fresh = itertools.count()


@pytest.fixture(scope="module")
def hub_args() -> tuple[str, ...]:
    """A hub that lets every test log in afresh (each gets its own FEDBOX_HOME)."""
    return NO_LOGIN_LIMITS


def _login(hub: HubProcess, email: str) -> None:
    url = f"hub://127.0.0.1:{hub.port}"
    code = request_code(url, email)
    assert code is not None
    login(url, email, code)


def _login_command(hub: HubProcess, email: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedbox", "login", "--hub", f"hub://127.0.0.1:{hub.port}",
         "--email", email],
        capture_output=True, text=True, timeout=60, env=os.environ.copy(),
    )  # fmt: skip


def test_login_stores_tokens_private_to_the_user(hub: HubProcess, fedbox_home: Path) -> None:
    done = _login_command(hub, ALICE)
    assert done.returncode == 0, done.stderr
    tokens = fedbox_home / ALICE / "hub-tokens.json"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert hub.url in tokens.read_text()


def test_a_store_without_a_login_says_how_to_log_in(hub: HubProcess) -> None:
    with pytest.raises(StoreError, match="fedbox login"):
        open_store(f"hub://127.0.0.1:{hub.port}")


@pytest.mark.parametrize("check", list(STORE_CHECKS))
def test_hub_store_passes_the_store_checks(hub: HubProcess, check: str) -> None:
    _login(hub, ALICE)

    def make() -> object:
        return open_store(f"hub://127.0.0.1:{hub.port}/datasites/{ALICE}/c{next(_fresh)}")

    check_store(make, only=[check])  # type: ignore[arg-type]


def test_a_watcher_catches_up_after_the_hub_restarts(hub: HubProcess) -> None:
    _login(hub, ALICE)
    url = f"hub://127.0.0.1:{hub.port}/datasites/{ALICE}/restart"
    with (
        open_store(url) as writer_store,
        open_store(url) as watch_store,
        watch_store.watch("", (".request",)) as watcher,
    ):
        writer_store.put("a/before.request", b"0")
        seen: set[str] = set()
        while "a/before.request" not in seen:
            batch = watcher.next_batch(timeout=30)
            assert batch, "nothing pushed before the restart"
            seen |= batch
        hub.stop()
        hub.start()
        names = {f"a/after{n}.request" for n in range(5)}
        for name in sorted(names):  # most are written before the watcher has reconnected
            writer_store.put(name, b"1")
        while not names <= seen:
            batch = watcher.next_batch(timeout=30)
            assert batch, f"missing after the restart: {names - seen}"
            seen |= batch


def test_listings_longer_than_a_page_are_whole(hub: HubProcess) -> None:
    _login(hub, ALICE)
    url = f"hub://127.0.0.1:{hub.port}/datasites/{ALICE}/paged"
    names = [f"d{n % 3}/f{n}.txt" for n in range(7)]
    with open_store(url, list_page=2) as store:
        for name in names:
            store.put(name, b"x")
        assert sorted(e.path for e in store.list()) == sorted(names)
        assert store.list_dirs() == ["d0", "d1", "d2"]


PUBLIC = b'rules:\n  - pattern: "**"\n    access: {read: ["*"]}\n'


@contextmanager
def echo_pair(hub: HubProcess, *, encrypt: bool = False) -> Iterator[tuple[App, Counter[str], Box]]:
    """Alice's app, Bob serving ``echo`` on it through the hub, the handled ids, and
    Alice's box. Each pair gets an app of its own: the hub outlives a test, and a new
    state dir would otherwise find the earlier tests' requests as its backlog."""
    app_name = f"echo{next(_fresh)}"
    for email in (ALICE, BOB):
        _login(hub, email)
    url = f"hub://127.0.0.1:{hub.port}"
    for email in (ALICE, BOB):  # keys are published under public/, readable by all
        with open_store(url, email=email) as store:
            store.put(f"datasites/{email}/public/syft.pub.yaml", PUBLIC)
    with (
        Box(open_store(url, email=ALICE), Workspace.for_email(ALICE), encrypt=encrypt) as alice,
        Box(open_store(url, email=BOB), Workspace.for_email(BOB), encrypt=encrypt) as bob,
    ):
        handled = serve_counted_echo(bob.app(app_name))
        yield alice.app(app_name), handled, alice


def _all_answered_once(alice: Box, futures: list[Future], handled: Counter[str]) -> None:
    _, pending = alice.wait(futures, timeout=60)
    assert not pending, f"{len(pending)} of {len(futures)} unanswered"
    for fut in futures:
        assert fut.result().status == 200
    assert handled == Counter({fut.id: 1 for fut in futures})


def test_rpc_through_the_hub_answers_each_request_once(hub: HubProcess) -> None:
    with echo_pair(hub) as (app, handled, alice):
        futures = [app.send(BOB, "echo", f"request {i}".encode()) for i in range(20)]
        _all_answered_once(alice, futures, handled)
        for i, fut in enumerate(futures):
            assert fut.result().body == f"request {i}".encode()[::-1]


def test_requests_across_a_hub_restart_are_answered_once(hub: HubProcess) -> None:
    with echo_pair(hub) as (app, handled, alice):
        futures = [app.send(BOB, "echo", f"request {i}".encode()) for i in range(5)]
        hub.stop()
        hub.start()
        futures += [app.send(BOB, "echo", f"request {i}".encode()) for i in range(5, 10)]
        _all_answered_once(alice, futures, handled)


def test_encrypted_rpc_through_the_hub_never_shows_it_a_body(hub: HubProcess) -> None:
    secret = b"patient 4711 has condition X"
    with echo_pair(hub, encrypt=True) as (app, handled, alice):
        futures = [app.send(BOB, "echo", secret) for _ in range(3)]
        _all_answered_once(alice, futures, handled)
        assert all(f.result().body == secret[::-1] for f in futures)
    stored = [p.read_bytes() for p in (hub.data / "blobs").rglob("*") if p.is_file()]
    assert stored
    assert not any(secret in b or secret[::-1] in b for b in stored)


@pytest.fixture
def quota_hub(tmp_path: Path) -> Iterator[HubProcess]:
    server = HubProcess(tmp_path / "quota", "--quota-bytes", "1000", "--quota-files", "3")
    yield server
    server.stop()


def test_quota_refuses_the_write_and_keeps_nothing_of_it(quota_hub: HubProcess) -> None:
    _login(quota_hub, ALICE)
    with open_store(f"hub://127.0.0.1:{quota_hub.port}/datasites/{ALICE}") as store:
        store.put("a.bin", b"x" * 600)
        with pytest.raises(StoreError, match="quota"):
            store.put("b.bin", b"y" * 600)
        store.put("a.bin", b"z" * 900)  # replacing one's own file counts the new size only
        store.put("c.bin", b"1")
        store.put("d.bin", b"2")
        with pytest.raises(StoreError, match="quota"):
            store.put("e.bin", b"3")
        assert sorted(e.path for e in store.list()) == ["a.bin", "c.bin", "d.bin"]
        assert store.read("a.bin") == b"z" * 900
    assert list((quota_hub.data / "blobs" / "tmp").iterdir()) == []


def test_a_corrupt_request_is_refused_once_and_left_to_its_sender(hub: HubProcess) -> None:
    """Bob may not move Alice's file aside on a hub (only she writes her outbox): he
    answers it 400 once, from his own log, and serves the requests around it."""
    with echo_pair(hub) as (app, handled, alice):
        bad_id = str(uuid.uuid4())
        bad = str(request_path(ALICE, BOB, app.name, "echo", bad_id))
        alice.store.put(bad, b"FBX1 this is not an envelope")
        answer = str(response_path(ALICE, BOB, app.name, "echo", bad_id))
        wait_until(lambda: alice.store.exists(answer), "bob to answer the bad request")
        with alice.store.open(answer) as f:
            assert read_header(f).status == 400
        futures = [app.send(BOB, "echo", b"fine") for _ in range(3)]
        _all_answered_once(alice, futures, handled)
        assert alice.store.exists(bad), "left where its sender sees it"
        assert handled[bad_id] == 0


def test_a_corrupt_response_is_held_back_until_a_new_one_lands(hub: HubProcess) -> None:
    for email in (ALICE, BOB):
        _login(hub, email)
    url = f"hub://127.0.0.1:{hub.port}"
    with (
        Box(open_store(url, email=ALICE), Workspace.for_email(ALICE)) as alice,
        open_store(url, email=BOB) as bob,
    ):
        fut = alice.app(f"held{next(_fresh)}").send(BOB, "echo", b"question")
        answer = str(response_path(ALICE, BOB, fut.record.app, "echo", fut.id))
        bob.put(answer, b"FBX1 garbage")
        with pytest.raises(CorruptMessage):
            fut.wait(timeout=30)
        with pytest.raises(ResponseTimeout):  # found again in the store, but not taken again
            fut.wait(timeout=1)
        header = message_header(
            BOB, ALICE, fut.record.app, "echo", msg_id=fut.id, kind=Kind.RESPONSE, status=200
        )
        bob.put(answer, envelope_bytes(header, b"the real answer"))
        assert fut.wait(timeout=30).body == b"the real answer"


def _reads_of_files(hub: HubProcess) -> float:
    """GET and HEAD requests on files the hub has answered so far (from /metrics)."""
    text = httpx.get(f"{hub.url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fedbox_hub_requests_total{")
        and 'route="/api/v1/files/{path:path}"' in line
        and ('method="GET"' in line or 'method="HEAD"' in line)
    )


def test_small_messages_reach_their_readers_with_the_feed(hub: HubProcess) -> None:
    """A round trip costs each side its write and nothing else: the request and the
    response arrive with their changes, and no one asks whether a reply exists."""
    with echo_pair(hub) as (app, _, _):
        app.send(BOB, "echo", b"warm up").wait(60)
        before = _reads_of_files(hub)
        for n in range(10):
            assert app.send(BOB, "echo", f"{n}".encode()).wait(60).body == f"{n}".encode()
        # A serving lease renewal may read its file once meanwhile: nothing per message.
        assert _reads_of_files(hub) - before <= 2


def test_a_large_file_is_read_as_it_streams_with_seeks(hub: HubProcess) -> None:
    _login(hub, ALICE)
    data = os.urandom(9 << 20)  # above what is read whole
    with open_store(f"hub://127.0.0.1:{hub.port}/datasites/{ALICE}") as store:
        store.put("large.bin", data)
        with store.open("large.bin") as f:
            assert f.read(100) == data[:100]
            assert f.seek(0, os.SEEK_END) == len(data)
            f.seek(5 << 20)
            assert f.read(1000) == data[5 << 20 : (5 << 20) + 1000]
            f.seek(10)
            assert f.read() == data[10:]
        with store.open("large.bin") as f:
            f.read(10)
            store.put("large.bin", data[::-1])  # replaced while being read
            f.seek(7 << 20)
            with pytest.raises(StoreError, match="changed"):
                f.read(10)
