"""Fixtures of the UI's tests: a world to show, and a logged-in client of the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ui_world import ME, SCREENSHOT_DIRS, World, build_world

from fedbox.ui import UiSettings, create_app

BASE = "http://127.0.0.1:8765"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for folder in SCREENSHOT_DIRS:
        terminalreporter.write_line(f"fedbox ui screenshots: {folder}")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


@pytest.fixture
def settings(world: World) -> UiSettings:
    return UiSettings(email=ME, state_dir=world.state, root=str(world.root), port=8765)


@pytest.fixture
def anonymous(settings: UiSettings) -> Iterator[TestClient]:
    """A client of the app that has not used the token (cookies kept, no redirects
    followed, so each answer can be checked)."""
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        yield client


@pytest.fixture
def client(anonymous: TestClient, settings: UiSettings) -> TestClient:
    """A client that opened the printed URL, so it holds the cookie."""
    response = anonymous.get(f"/?token={settings.token}")
    assert response.status_code == 303
    return anonymous
