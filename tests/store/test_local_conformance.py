"""LocalStore passes the shared Store conformance suite, with events and with polling."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_conformance import StoreConformance

from fedbox.store import LocalStore


class TestLocalStore(StoreConformance):
    @pytest.fixture(params=["events", "poll"])
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> LocalStore:
        return LocalStore(tmp_path / "s", watch_mode=request.param, poll_interval=0.05)
