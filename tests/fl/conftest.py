"""Fixtures for the Flower tests (helpers live in fl_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fl_helpers import Proc


@pytest.fixture
def start_fedbox(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    procs: list[Proc] = []

    def start(name: str, *args: str) -> Proc:
        proc = Proc(tmp_path / f"{name}.log", *args)
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        p.kill()
