"""``hub://`` stores: fedbox login, the store conformance checks, and RPC through a hub."""

from __future__ import annotations

import itertools
import os
import stat
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_process import HubProcess

from fedbox.datasite.workspace import Workspace
from fedbox.errors import StoreError
from fedbox.hub.credentials import login, request_code
from fedbox.rpc import Box, Request
from fedbox.store import open_store
from fedbox.testing.store_checks import STORE_CHECKS, check_store

ALICE, BOB = "alice@lab.org", "bob@hospital.org"
_fresh = itertools.count()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A hub that lets every test log in afresh (each gets its own FEDBOX_HOME)."""
    limits = ("--login-per-email", "10000", "--login-per-address", "10000")
    server = HubProcess(Path(tmp_path_factory.mktemp("hub")), *limits)
    yield server
    server.stop()


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


def test_rpc_through_the_hub_answers_each_request_once(hub: HubProcess) -> None:
    for email in (ALICE, BOB):
        _login(hub, email)
    url = f"hub://127.0.0.1:{hub.port}"
    handled: Counter[str] = Counter()
    lock = threading.Lock()
    with (
        Box(open_store(url, email=ALICE), Workspace.for_email(ALICE)) as alice,
        Box(open_store(url, email=BOB), Workspace.for_email(BOB)) as bob,
    ):
        server = bob.app("echo")

        @server.on_request("echo")
        def echo(req: Request) -> bytes:
            with lock:
                handled[req.id] += 1
            return req.body[::-1]

        server.start()
        app = alice.app("echo")
        futures = [app.send(BOB, "echo", f"request {i}".encode()) for i in range(20)]
        _, pending = alice.wait(futures, timeout=60)
        assert not pending
        for i, fut in enumerate(futures):
            assert fut.result().body == f"request {i}".encode()[::-1]
        assert handled == Counter({fut.id: 1 for fut in futures})
