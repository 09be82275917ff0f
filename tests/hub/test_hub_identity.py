"""Login by one-time code, token expiry and refresh, revocation, and 429 on login floods."""

from __future__ import annotations

import re
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hub_process import HubProcess, login
from waiting import wait_until

A = "alice@x.org"
FILE = f"/api/v1/files/datasites/{A}/f.txt"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_code_login_gives_working_tokens(hub: HubProcess) -> None:
    tokens = login(hub.url, A)
    assert tokens["email"] == A
    put = httpx.put(hub.url + FILE, content=b"x", headers=_bearer(tokens["access_token"]))
    assert put.status_code == 200


def test_a_wrong_code_is_refused_and_a_code_works_once(hub: HubProcess) -> None:
    email = "once@x.org"
    code = httpx.post(f"{hub.url}/api/v1/auth/code", json={"email": email}).json()["code"]
    wrong = "000000" if code != "000000" else "111111"
    bad = httpx.post(f"{hub.url}/api/v1/auth/token", json={"email": email, "code": wrong})
    assert bad.status_code == 401
    good = httpx.post(f"{hub.url}/api/v1/auth/token", json={"email": email, "code": code})
    assert good.status_code == 200
    again = httpx.post(f"{hub.url}/api/v1/auth/token", json={"email": email, "code": code})
    assert again.status_code == 401


def test_too_many_wrong_codes_void_the_code(hub: HubProcess) -> None:
    email = "guesser@x.org"
    code = httpx.post(f"{hub.url}/api/v1/auth/code", json={"email": email}).json()["code"]
    wrong = [f"{n:06d}" for n in range(6) if f"{n:06d}" != code][:5]
    for guess in wrong:
        httpx.post(f"{hub.url}/api/v1/auth/token", json={"email": email, "code": guess})
    late = httpx.post(f"{hub.url}/api/v1/auth/token", json={"email": email, "code": code})
    assert late.status_code == 401


@pytest.mark.parametrize(
    "body",
    [{}, {"email": "not-an-email"}, {"email": "a/../b@x.org"}, {"email": "a\x00@x.org"},
     {"email": "x" * 300 + "@x.org"}],
)  # fmt: skip
def test_bad_login_input_gets_422(hub: HubProcess, body: dict) -> None:
    assert httpx.post(f"{hub.url}/api/v1/auth/code", json=body).status_code == 422


def test_refresh_rotates_and_a_replayed_refresh_token_revokes_the_session(
    hub: HubProcess,
) -> None:
    first = login(hub.url, A)
    refreshed = httpx.post(
        f"{hub.url}/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert refreshed.status_code == 200
    second = refreshed.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert httpx.get(hub.url + FILE, headers=_bearer(second["access_token"])).status_code in (
        200,
        404,
    )
    replay = httpx.post(
        f"{hub.url}/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    # The replay ended the session: its newest tokens stop working too.
    assert httpx.get(hub.url + FILE, headers=_bearer(second["access_token"])).status_code == 401
    after = httpx.post(
        f"{hub.url}/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert after.status_code == 401


def test_revoke_command_ends_access_and_refresh(hub: HubProcess) -> None:
    email = "leaver@x.org"
    tokens = login(hub.url, email)
    path = f"{hub.url}/api/v1/files/datasites/{email}/a.txt"
    assert httpx.put(path, content=b"x", headers=_bearer(tokens["access_token"])).status_code == 200
    done = subprocess.run(
        [sys.executable, "-m", "fedbox", "hub", "revoke", email, "--data", str(hub.data)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "revoked 1 session" in done.stdout
    # The hub trusts a session it checked for up to a second; then the revocation lands.
    wait_until(
        lambda: httpx.get(path, headers=_bearer(tokens["access_token"])).status_code == 401,
        "the revoked token to be refused",
        timeout=10,
    )
    refresh = httpx.post(
        f"{hub.url}/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 401


@pytest.fixture(scope="module")
def strict_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    server = HubProcess(
        Path(tmp_path_factory.mktemp("strict")),
        "--access-ttl", "1", "--login-per-email", "3", "--login-per-address", "8",
    )  # fmt: skip
    yield server
    server.stop()


def test_access_tokens_expire_and_refresh_restores_access(strict_hub: HubProcess) -> None:
    tokens = login(strict_hub.url, A)
    url = strict_hub.url + FILE
    wait_until(
        lambda: httpx.get(url, headers=_bearer(tokens["access_token"])).status_code == 401,
        "the access token to expire",
        timeout=10,
    )
    answer = httpx.get(url, headers=_bearer(tokens["access_token"]))
    assert "expired" in answer.json()["detail"]
    fresh = httpx.post(
        f"{strict_hub.url}/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    ).json()
    assert httpx.get(url, headers=_bearer(fresh["access_token"])).status_code == 404


def test_login_flood_gets_429_per_email_then_per_address(strict_hub: HubProcess) -> None:
    url = f"{strict_hub.url}/api/v1/auth/code"
    statuses = [httpx.post(url, json={"email": "flood@x.org"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = httpx.post(url, json={"email": "flood@x.org"})
    assert int(limited.headers["retry-after"]) > 0
    others = [httpx.post(url, json={"email": f"u{n}@x.org"}).status_code for n in range(8)]
    assert 429 in others  # the address ran out, whatever the email


class _SmtpSink(socketserver.StreamRequestHandler):
    """Just enough SMTP to take one message (no TLS): what a real relay would get."""

    def handle(self) -> None:
        self.wfile.write(b"220 sink\r\n")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                body = b""
                while not body.endswith(b"\r\n.\r\n"):
                    body += self.rfile.readline()
                self.server.mails.append(body.decode())  # type: ignore[attr-defined]
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def test_a_hub_without_dev_mails_the_code_and_never_returns_it(tmp_path: Path) -> None:
    sink = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpSink)
    sink.mails = []  # type: ignore[attr-defined]
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    server = HubProcess(
        tmp_path / "mail", "--smtp-host", "127.0.0.1", "--smtp-port",
        str(sink.server_address[1]), "--no-smtp-starttls", dev=False,
    )  # fmt: skip
    try:
        answer = httpx.post(f"{server.url}/api/v1/auth/code", json={"email": A}).json()
        assert answer == {"sent": True, "code": None}
        (mail,) = sink.mails  # type: ignore[attr-defined]
        code = re.search(r"login code is (\d{6})", mail)
        assert code is not None
        tokens = httpx.post(
            f"{server.url}/api/v1/auth/token", json={"email": A, "code": code.group(1)}
        )
        assert tokens.status_code == 200
    finally:
        server.stop()
        sink.shutdown()
