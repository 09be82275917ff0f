"""Shared fixtures: an isolated FEDBOX_HOME and real participant processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from peer_process import PEER, killed_at_exit

pytest_plugins = ["remote_fixtures"]


@pytest.fixture(autouse=True)
def fedbox_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state dirs, for itself and the processes it starts."""
    home = tmp_path / "home"
    monkeypatch.setenv("FEDBOX_HOME", str(home))
    return home


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


class Peer:
    """A serving participant in its own process; stops when stdin closes."""

    def __init__(self, root: Path, email: str, app: str = "t", *, encrypt: bool = False) -> None:
        extra = ["--encrypt"] if encrypt else []
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), "serve", str(root), email, app, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"peer did not start: {line!r}"

    def stop(self) -> dict:
        if self.proc.poll() is not None:
            return {}
        out, _ = self.proc.communicate("", timeout=30)
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def start_peer(root: Path) -> Iterator:
    with killed_at_exit(partial(Peer, root)) as start:
        yield start
