"""Real ``fedbox sync`` daemons for the tests: each its own process, folder and login."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub_process import client_for
from waiting import wait_until

from fedbox.hub.credentials import login, request_code

SHARED_RULES = """
rules:
  - pattern: "shared/**"
    access: {read: ["*"], write: ["*"]}
  - pattern: "public/**"
    access: {read: ["*"]}
"""


def log_in(hub_url: str, email: str) -> None:
    """A saved login for ``email`` under this test's $FEDBOX_HOME (a --dev hub)."""
    login(hub_url, email, request_code(hub_url, email) or "")


class SyncProcess:
    """``fedbox sync`` on ``folder`` as ``email``; its output goes to a file."""

    def __init__(self, hub_url: str, email: str, folder: Path, *flags: str) -> None:
        self.hub_url = hub_url
        self.email = email
        self.folder = folder
        self.flags = flags
        folder.mkdir(parents=True, exist_ok=True)
        self._log = tempfile.NamedTemporaryFile(prefix="sync-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fedbox", "sync", "--hub", self.hub_url, "--email",
             self.email, "--dir", str(self.folder), "--min-free", "0", *self.flags],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "300"},
        )  # fmt: skip
        wait_until(lambda: self._started() or self.proc.poll() is not None, "the daemon to start")
        assert self.proc.poll() is None, self.output

    def _started(self) -> bool:
        return "syncing " in self.output

    @property
    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        return json.loads((self.folder / ".fedbox-sync" / "status.json").read_text())

    def idle(self) -> bool:
        s = self.status()
        return bool(s["caught_up"]) and s["lag"] == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def sync_once(hub_url: str, email: str, folder: Path, *flags: str) -> str:
    """``fedbox sync --once``: its output (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "fedbox", "sync", "--once", "--hub", hub_url, "--email", email,
         "--dir", str(folder), "--min-free", "0", *flags],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def requests_by_route(metrics: str) -> dict[str, int]:
    """``fedbox_hub_requests_total`` summed per "METHOD route" from a /metrics page."""
    counts: dict[str, int] = {}
    for m in re.finditer(
        r'fedbox_hub_requests_total\{method="(\w+)",route="([^"]*)",status="\d+"\} (\d+)', metrics
    ):
        key = f"{m.group(1)} {m.group(2)}"
        counts[key] = counts.get(key, 0) + int(m.group(3))
    return counts


def two_sharing_daemons(
    hub_url: str, owner: str, other: str, tmp_path: Path, start: Callable[..., SyncProcess]
) -> tuple[SyncProcess, SyncProcess]:
    """Daemons of ``owner`` and ``other`` (folders ``a`` and ``b`` under ``tmp_path``),
    with ``owner``'s datasite shared with everyone (:data:`SHARED_RULES`)."""
    rules = f"/api/v1/files/datasites/{owner}/syft.pub.yaml"
    client_for(hub_url, owner).put(rules, content=SHARED_RULES)
    log_in(hub_url, owner), log_in(hub_url, other)
    return start(hub_url, owner, tmp_path / "a"), start(hub_url, other, tmp_path / "b")
