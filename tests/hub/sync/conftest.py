"""A fresh hub per test (daemons mirror everything they may read, so tests must not share
one), and logins for the participants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hub_process import NO_LOGIN_LIMITS, HubProcess
from sync_process import SyncProcess

A, B, C = "alice@x.org", "bob@y.org", "carol@z.org"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    server = HubProcess(tmp_path / "hub", *NO_LOGIN_LIMITS)
    yield server
    server.stop()


@pytest.fixture
def start_sync() -> Iterator[Callable[..., SyncProcess]]:
    """Start daemons; every one still running is stopped after the test."""
    started: list[SyncProcess] = []

    def start(hub_url: str, email: str, folder: Path, *flags: str) -> SyncProcess:
        daemon = SyncProcess(hub_url, email, folder, *flags)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()
        print(f"--- fedbox sync as {daemon.email} on {daemon.folder}:\n{daemon.output}")
