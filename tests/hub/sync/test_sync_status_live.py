"""``fedbox sync status`` in a terminal: the Rich live view, run in a pseudo-terminal
beside a running daemon, shows the status and follows it as it changes."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import A
from hub_process import HubProcess
from sync_process import SyncProcess, log_in
from waiting import wait_until

_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A process whose stdout and stderr are a pseudo-terminal we read."""

    def __init__(self, *args: str) -> None:
        self._master, replica = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fedbox", *args], stdin=replica, stdout=replica,
            stderr=replica, env={**os.environ, "COLUMNS": "200", "TERM": "xterm-256color"},
            close_fds=True,
        )  # fmt: skip
        os.close(replica)
        self.screen = b""

    def shown(self) -> str:
        """Everything written so far, escape sequences removed."""
        while select.select([self._master], [], [], 0)[0]:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # the process ended and closed its side
                break
            if not chunk:
                break
            self.screen += chunk
        return _ESCAPES.sub(b"", self.screen).decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        os.close(self._master)


def test_live_status_in_a_terminal_follows_the_daemon(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    log_in(hub.url, A)
    a = start_sync(hub.url, A, tmp_path / "a")
    wait_until(a.idle, "the daemon to settle")
    view = Terminal("sync", "status", "--dir", str(a.folder))
    try:
        wait_until(lambda: "0 up, 0 down" in view.shown(), "the live table")
        assert "fedbox sync:" in view.shown() and "running" in view.shown()
        assert "inotify" in view.shown()
        public = a.folder / f"datasites/{A}/public"
        public.mkdir(parents=True)
        (public / "new.txt").write_text("uploaded while the view runs")
        wait_until(lambda: "1 up, 0 down" in view.shown(), "the view to show the upload")
        assert view.proc.poll() is None  # still live
        view.proc.send_signal(signal.SIGINT)  # Ctrl-C ends it quietly
        assert view.proc.wait(timeout=30) == 0
        assert "Traceback" not in view.shown()
    finally:
        view.close()
