"""Failures of the fedbox side reach an httpx user as httpx's own exceptions, each the
most specific one, the fedbox error chained (issue 17, point 1)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import APP, OWNER

import fedbox
from fedbox.bridge import Transport
from fedbox.errors import CryptoError, ResponseTimeout
from fedbox.rpc import Box


def client_for(box: Box, owner: str = OWNER) -> httpx.Client:
    return httpx.Client(transport=Transport(box, owner, APP), base_url="http://svc", timeout=30)


def test_an_owner_without_published_keys_is_a_connect_error(caller: Box) -> None:
    with client_for(caller, "ghost@example.org") as c, pytest.raises(httpx.ConnectError) as err:
        c.get("/whoami")
    assert isinstance(err.value.__cause__, CryptoError)
    assert "did.json" in str(err.value)


def test_no_answer_within_the_timeout_is_a_read_timeout(caller: Box) -> None:
    with client_for(caller) as c, pytest.raises(httpx.ReadTimeout) as err:
        c.get("/whoami", timeout=0.2)
    assert isinstance(err.value.__cause__, ResponseTimeout)


def test_a_plaintext_request_refused_by_the_owner_is_a_protocol_error(
    root: Path, owner: Box, bridge: object
) -> None:
    refused = pytest.raises(httpx.RemoteProtocolError, match=r"403.*encryption required")
    plain = fedbox.connect(root, "plain@example.org", encrypt=False)
    with plain, client_for(plain) as c, refused:
        c.get("/whoami")


def test_an_owner_serving_the_app_without_a_bridge_is_a_protocol_error(
    owner: Box, caller: Box
) -> None:
    app = owner.app(APP)
    app.start()  # no handler for endpoint http
    try:
        with client_for(caller) as c, pytest.raises(httpx.RemoteProtocolError, match="404"):
            c.get("/whoami")
    finally:
        app.stop()
