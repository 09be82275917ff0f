"""Fixtures for the bridge tests: an owner and a caller on one folder (encrypted, as by
default), the test FastAPI application (``service.py``) and an httpx client whose
transport is the bridge."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("httpx", reason="the bridge needs: pip install 'fedbox[bridge]'")
pytest.importorskip("fastapi")

import httpx
import service

import fedbox
from fedbox.bridge import Bridge, Transport, serve
from fedbox.rpc import Box

OWNER = "owner@example.org"
CALLER = "caller@example.org"
APP = "svc"


def until(condition: Callable[[], object], timeout: float = 30, what: str = "") -> None:
    """Wait for ``condition()`` to hold, checking every few milliseconds; fail after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def fresh_counts() -> Iterator[None]:
    service.calls.clear()
    service.inside.clear()
    service.gate.clear()
    yield
    service.gate.set()  # nothing stays blocked after a test


@pytest.fixture
def owner(root: Path) -> Iterator[Box]:
    with fedbox.connect(root, OWNER) as box:
        yield box


@pytest.fixture
def caller(root: Path, owner: Box) -> Iterator[Box]:
    with fedbox.connect(root, CALLER) as box:
        yield box


@pytest.fixture
def bridge(owner: Box) -> Iterator[Bridge]:
    with serve(owner, APP, asgi_app=service.app, allow=["* /**"]) as running:
        yield running


@pytest.fixture
def client(caller: Box) -> Iterator[httpx.Client]:
    transport = Transport(caller, OWNER, APP)
    with httpx.Client(transport=transport, base_url="http://svc", timeout=60) as c:
        yield c
