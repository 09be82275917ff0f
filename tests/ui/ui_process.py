"""``fedbox ui`` as a real process on a free port; its printed URL is read back."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


class UiProcess:
    """``fedbox ui --port 0 ARGS``; ``url`` is the address it printed, token included."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fedbox", "ui", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
        )
        self._stderr: str | None = None
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"(http://\S+)", line)
        if found is None:
            self.close()
            raise AssertionError(f"fedbox ui printed {line!r}; stderr: {self.stderr()}")
        self.url = found[1]
        self.base = self.url.split("/?token=")[0]

    def stderr(self) -> str:
        """What it printed to stderr (it is stopped first)."""
        self.close()
        if self._stderr is None:
            assert self.proc.stderr is not None
            self._stderr = self.proc.stderr.read()
        return self._stderr

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
