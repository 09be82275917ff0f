"""LocalStore passes the shared Store checks (``fedbox.testing``), with events and polling."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from fedbox.store import LocalStore
from fedbox.testing import STORE_CHECKS, check_store


@pytest.mark.parametrize("check", STORE_CHECKS)
@pytest.mark.parametrize("mode", ["events", "poll"])
def test_local_store_conforms(tmp_path: Path, mode: str, check: str) -> None:
    count = itertools.count()
    check_store(
        lambda: LocalStore(tmp_path / f"s{next(count)}", watch_mode=mode, poll_interval=0.05),
        only=[check],
    )
