"""RPC over remote stores: two Boxes on one RemoteStore root, against real servers.

Each request is answered exactly once, including requests sent while the server was
down (they wait in the sender's retries and are answered once it is back).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from remote_servers import REMOTES, SERVERS, Target

from fedbox.datasite.workspace import Workspace
from fedbox.errors import StoreError
from fedbox.rpc import Box, Future
from fedbox.testing.echo import serve_counted_echo

ALICE, BOB, CAROL = "alice@lab.org", "bob@hospital.org", "carol@clinic.org"
APP = "echo_app"
FAST = {"min_poll_interval": 0.02, "max_poll_interval": 0.5}


@contextmanager
def echo_pair(target: Target, **options: object) -> Iterator[tuple[Box, Counter[str]]]:
    """Alice's box, and Bob serving ``echo`` on his own store object; yields handled ids."""
    opts = {**FAST, **options}
    with (
        Box(target.make(**opts), Workspace.for_email(ALICE)) as alice,
        Box(target.make(**opts), Workspace.for_email(BOB)) as bob,
    ):
        yield alice, serve_counted_echo(bob.app(APP))


def _check_all_answered_once(alice: Box, futures: list[Future], handled: Counter[str]) -> None:
    _, pending = alice.wait(futures, timeout=60)
    assert not pending, f"{len(pending)} of {len(futures)} requests unanswered"
    for i, fut in enumerate(futures):
        response = fut.result()
        assert response.status == 200
        assert response.body == f"request {i}".encode()[::-1]
    assert handled == Counter({fut.id: 1 for fut in futures})


@pytest.mark.parametrize("name", REMOTES)
def test_twenty_requests_are_each_answered_once(
    name: str, make_target: Callable[[str], Target]
) -> None:
    with echo_pair(make_target(name)) as (alice, handled):
        app = alice.app(APP)
        futures = [app.send(BOB, "echo", f"request {i}".encode()) for i in range(20)]
        _check_all_answered_once(alice, futures, handled)


@pytest.mark.parametrize("name", SERVERS)
def test_requests_sent_during_an_outage_complete_when_it_ends(
    name: str, make_target: Callable[[str], Target]
) -> None:
    target = make_target(name)
    with echo_pair(target) as (alice, handled):
        app = alice.app(APP)
        futures = [app.send(BOB, "echo", f"request {i}".encode()) for i in range(10)]
        target.server.stop()
        restart = threading.Timer(1.5, target.server.start)
        restart.start()
        try:
            # These block in the store's retries until the server is back.
            futures += [app.send(BOB, "echo", f"request {i}".encode()) for i in range(10, 20)]
        finally:
            restart.join()
        _check_all_answered_once(alice, futures, handled)


@pytest.mark.parametrize("name", SERVERS)
def test_wrong_credentials_report_a_clear_store_error(
    name: str, make_target: Callable[[str], Target]
) -> None:
    target = make_target(name)
    with (
        Box(target.make_bad(retry_timeout=30), Workspace.for_email(ALICE)) as alice,
        pytest.raises(StoreError, match="refused access") as info,
    ):
        alice.app(APP).send(BOB, "echo", b"hello")
    assert "Check the credentials" in str(info.value)


@pytest.mark.parametrize("name", ["s3", "webdav"])
def test_a_new_senders_first_request_waits_for_no_folder_refresh(
    name: str, make_target: Callable[[str], Target]
) -> None:
    """First contact (issue 20): Bob already polls Alice's folder, fast because she keeps
    him busy; Carol's first request is found by the next poll (the folder names are
    listed with it), not by a refresh of the names or a rescan, which come only after
    the minute this test waits at most."""
    target = make_target(name)
    slow = {"min_poll_interval": 0.05, "max_poll_interval": 120.0}
    with (
        Box(target.make(**slow), Workspace.for_email(ALICE)) as alice,
        Box(target.make(**slow), Workspace.for_email(BOB), rescan_interval=600) as bob,
        Box(target.make(**slow), Workspace.for_email(CAROL)) as carol,
    ):
        handled = serve_counted_echo(bob.app(APP))
        assert alice.app(APP).send(BOB, "echo", b"known").wait(60).status == 200
        stop = threading.Event()

        def keep_bob_busy() -> None:
            while not stop.is_set():
                alice.app(APP).send(BOB, "echo", b"busy").wait(60)

        busy = threading.Thread(target=keep_bob_busy)
        busy.start()
        try:
            first = carol.app(APP).send(BOB, "echo", b"first contact")
            response = first.wait(60)
        finally:
            stop.set()
            busy.join(60)
        assert response.status == 200 and response.body == b"tcatnoc tsrif"
        assert handled[first.id] == 1
