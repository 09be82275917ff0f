"""Owners and scientists as separate processes with their own state dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cli_process import fedbox_cli


class Person:
    """One identity on one store, with a state dir of its own; runs ``fedbox`` commands."""

    def __init__(
        self, root: Path | str, email: str, home: Path, flags: list[str] | None = None
    ) -> None:
        self.root = str(root)
        self.flags = flags or []
        self.email = email
        self.state_dir = home / email
        self.daemon: subprocess.Popen[str] | None = None

    def _args(self, *args: str, store: bool = True) -> list[str]:
        where = ["--root", self.root, *self.flags] if store else []
        return [*args, *where, "--email", self.email, "--state-dir", str(self.state_dir)]

    def run(
        self, *args: str, local: bool = False, anyone: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``fedbox ARGS`` as this identity; ``local`` commands take no ``--root``,
        ``anyone``'s (reading what is public) take only ``--root``."""
        if anyone:
            return fedbox_cli(*args, "--root", self.root, *self.flags, timeout=timeout)
        return fedbox_cli(*self._args(*args, store=not local), timeout=timeout)

    def json(self, *args: str, local: bool = False, anyone: bool = False) -> Any:
        done = self.run(*args, "--json", local=local, anyone=anyone)
        assert done.returncode == 0, done.stderr + done.stdout
        return json.loads(done.stdout)

    def serve(self) -> None:
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "fedbox", *self._args("serve", "--ready")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "COLUMNS": "300"},
        )
        assert self.daemon.stdout is not None
        for line in self.daemon.stdout:
            if line.strip() == "ready":
                return
        raise AssertionError("the daemon did not start")

    def stop(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(timeout=30)

    def received(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        """The owner's record of ``job_id`` once its daemon has taken the submission."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for job in self.json("job", "list", local=True)["received"]:
                if job["id"] == job_id:
                    return job
            time.sleep(0.2)
        raise AssertionError(f"{self.email} never received job {job_id}")


def store_bytes(root: Path) -> bytes:
    """Every byte of every file in the store, to search for what must not be there."""
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink())
