"""A throwaway hub for ``fedbox simulate --hub``: a ``--dev`` hub process on 127.0.0.1.

It runs as a process of its own (``fedbox hub serve``), as a real hub would, so the
simulation's participants talk to it over HTTP and its websocket feed exactly as
deployed ones do. It holds a :class:`~fedbox.cli.lifeline.Lifeline`, so it dies with
the command that started it however that ends (Ctrl-C, kill -9).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from fedbox.cli.lifeline import Lifeline
from fedbox.errors import FedboxError

__all__ = ["DevHub"]

HUB_LOG = "hub.log"
_START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_in_to_dev_hub(url: str, email: str, state_dir: Path) -> None:
    """Log ``email`` in to the ``--dev`` hub at ``url`` (it returns the code instead of
    mailing it), its tokens saved in ``state_dir`` as ``fedbox login`` would."""
    from fedbox.hub.credentials import login, request_code

    code = request_code(url, email)
    if code is None:
        raise FedboxError(
            f"the hub at {url} mails its login codes: a simulation needs a hub started "
            "with --dev (or --hub, which starts one)"
        )
    login(url, email, code, state_dir)


class DevHub:
    """A ``--dev`` hub keeping its data in ``data``, started and ready when this returns.

    Login codes come back to the caller (no mail), and login rate limits are lifted:
    a simulation logs every participant in at once.
    """

    def __init__(self, data: Path) -> None:
        self.data = data
        data.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self._lifeline = Lifeline()
        with open(data / HUB_LOG, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "fedbox", "hub", "serve", "--data", str(data),
                 "--port", str(self.port), "--dev", "--login-per-email", "1000000",
                 "--login-per-address", "1000000", "--lifeline", str(self._lifeline.child_fd)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, pass_fds=(self._lifeline.child_fd,),
            )  # fmt: skip
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The store root every participant uses."""
        return f"hub://127.0.0.1:{self.port}"

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise FedboxError(f"the hub exited while starting; see {self.data / HUB_LOG}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).is_success:
                    return
            except httpx.TransportError:
                time.sleep(0.05)  # still binding its port: ask again
        raise FedboxError(f"the hub did not start within {_START_TIMEOUT:.0f} s")

    def log_in(self, email: str, state_dir: Path) -> None:
        """Log ``email`` in, its tokens saved in ``state_dir`` as ``fedbox login`` would."""
        log_in_to_dev_hub(self.url, email, state_dir)

    def stop(self) -> None:
        """End the hub (idempotent); its data stays in :attr:`data`."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._lifeline.close()
