"""A real hub: ``fedbox hub serve`` in its own process on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BACKENDS = ("sqlite", "postgres-s3")
"""Where a test hub keeps its data: SQLite + a folder (the default), or PostgreSQL + S3
(moto). A module runs its tests on both by overriding the ``hub_backend`` fixture."""
START_TIMEOUT = 90
"""Seconds a hub may take to answer /healthz: imports alone take seconds on a busy machine."""

# For a hub whose tests each log in afresh, many times from one address.
NO_LOGIN_LIMITS = ("--login-per-email", "10000", "--login-per-address", "10000")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProcess:
    def __init__(
        self, data: Path, *flags: str, dev: bool = True, env: dict[str, str] | None = None
    ) -> None:
        self.data = data
        self.env = {**os.environ, **(env or {})}
        self.flags = (*flags, "--dev") if dev else flags
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fedbox", "hub", "serve", "--data", str(self.data),
             "--port", str(self.port), *self.flags],
            env=self.env,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the hub exited while starting"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)  # the server is still binding its port; poll again
        self.stop()  # not left running when the test gives up on it
        raise TimeoutError(f"the hub did not answer /healthz within {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def login(url: str, email: str) -> dict:
    """Log in through a --dev hub (it returns the code); the token response."""
    with httpx.Client(base_url=url) as client:
        code = client.post("/api/v1/auth/code", json={"email": email}).json()["code"]
        answer = client.post("/api/v1/auth/token", json={"email": email, "code": code})
        answer.raise_for_status()
        return answer.json()


def client_for(url: str, email: str) -> httpx.Client:
    token = login(url, email)["access_token"]
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})


def raw_status(port: int, method: str, target: str, token: str, body: bytes = b"") -> int:
    """Send a request line exactly as given (no client-side URL cleaning); its status."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: hub\r\nAuthorization: {token}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        reply = b""
        while b"\r\n" not in reply:
            chunk = raw.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])
