"""Presigned downloads against an S3 server that checks them: s3rver (npm, pinned in
tests/s3rver; ``make test`` installs it) verifies the signature and the expiry of every
query-signed URL, as AWS does, so a URL the hub signed wrongly would be refused here.

s3rver checks signature version 2, the kind s3fs presigns by default; it lets version 4
query signatures through unchecked, so these tests use version 2. The hub runs on SQLite
with its blobs in s3rver's bucket and URLs that live 3 seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import fsspec
import httpx
import pytest
from hub_process import HubProcess, client_for, free_port
from waiting import wait_until

from fedbox.errors import StoreError
from fedbox.hub.client import HubStore
from fedbox.hub.credentials import login, request_code

A, B = "alice@x.org", "bob@x.org"
BIG = f"datasites/{A}/public/big.bin"
OTHER = f"datasites/{A}/public/other.bin"
SPOILT = f"datasites/{A}/public/spoilt.bin"
SPOILT_STREAMED = f"datasites/{A}/public/spoilt-streamed.bin"
RULES = 'rules:\n  - pattern: "public/**"\n    access: {read: ["*"]}\n'
BODY = bytes(range(256)) * 40
STREAMED = os.urandom(9 << 20)  # above what a hub store reads whole: hashed as it streams
S3RVER = Path(__file__).resolve().parents[1] / "s3rver" / "node_modules" / ".bin" / "s3rver"
BUCKET = "fedbox-signed"
OPTIONS = {"key": "S3RVER", "secret": "S3RVER", "client_kwargs": {"region_name": "us-east-1"}}
"""s3rver's built-in account."""


class S3rver:
    """s3rver in a process of its own, with one bucket, keeping its objects in ``data``."""

    def __init__(self, data: Path) -> None:
        node = shutil.which("node")
        if node is None or not S3RVER.exists():
            reason = f"s3rver needs node and {S3RVER} (make test runs npm ci in tests/s3rver)"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [node, str(S3RVER), "-d", str(data), "-a", "127.0.0.1", "-p", str(self.port),
             "--silent", "--configure-bucket", BUCKET],
        )  # fmt: skip
        wait_until(self._answers, "s3rver to answer", timeout=30)

    def _answers(self) -> bool:
        assert self.proc.poll() is None, "s3rver exited while starting"
        try:
            httpx.get(self.endpoint, timeout=2)
        except httpx.TransportError:
            return False
        return True

    @property
    def options(self) -> dict[str, object]:
        return {**OPTIONS, "endpoint_url": self.endpoint}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def s3rver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3rver]:
    server = S3rver(tmp_path_factory.mktemp("s3rver"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backend_flags(s3rver: S3rver) -> tuple[tuple[str, ...], dict[str, str]]:
    env = {"FEDBOX_STORAGE_OPTIONS": json.dumps({"s3": s3rver.options})}
    return ("--blobs", f"s3://{BUCKET}/hub"), env


@pytest.fixture(scope="module")
def hub_args() -> tuple[str, ...]:
    return ("--direct-downloads-above", "1000", "--direct-url-expiry", "3")


@pytest.fixture(scope="module")
def alice(hub: HubProcess) -> httpx.Client:
    client = client_for(hub.url, A)
    client.put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=RULES).raise_for_status()
    for path, body in ((BIG, BODY), (OTHER, BODY[::-1]), (SPOILT, BODY)):
        client.put(f"/api/v1/files/{path}", content=body).raise_for_status()
    client.put(f"/api/v1/files/{SPOILT_STREAMED}", content=STREAMED).raise_for_status()
    return client


def _presigned(client: httpx.Client, path: str) -> str:
    answer = client.get(f"/api/v1/files/{path}")
    assert answer.status_code == 307
    return str(answer.headers["location"])


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert set(changes) <= set(query)
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


def test_a_presigned_url_downloads_the_file(alice: httpx.Client) -> None:
    url = _presigned(alice, BIG)
    assert {"Signature", "Expires", "AWSAccessKeyId"} <= dict(parse_qsl(urlsplit(url).query)).keys()
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert answer.content == BODY


def test_a_tampered_url_is_refused(alice: httpx.Client) -> None:
    url = _presigned(alice, BIG)
    signature = dict(parse_qsl(urlsplit(url).query))["Signature"]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    other_object = urlsplit(_presigned(alice, OTHER)).path
    expires = str(int(dict(parse_qsl(urlsplit(url).query))["Expires"]) + 3600)
    for tampered in (
        _with_query(url, Signature=flipped),
        _with_query(url, Expires=expires),  # a longer life than the hub gave
        urlunsplit(urlsplit(url)._replace(path=other_object)),  # another blob, same signature
    ):
        refused = httpx.get(tampered)
        assert refused.status_code == 403, tampered
        assert "SignatureDoesNotMatch" in refused.text


def test_an_expired_url_is_refused(alice: httpx.Client) -> None:
    url = _presigned(alice, BIG)
    assert httpx.get(url).status_code == 200
    wait_until(lambda: httpx.get(url).status_code == 403, "the URL to expire", timeout=60)
    assert "Request has expired" in httpx.get(url).text


def _spoil(s3rver: S3rver, url: str) -> None:
    """Overwrite the object ``url`` names with other bytes of the same length."""
    fs = fsspec.filesystem("s3", **s3rver.options)
    key = urlsplit(url).path.lstrip("/")
    size = fs.size(key)
    fs.pipe_file(key, os.urandom(size))


def test_a_hub_store_follows_the_redirect_and_checks_the_bytes(
    hub: HubProcess, alice: httpx.Client, s3rver: S3rver
) -> None:
    url = f"hub://127.0.0.1:{hub.port}"
    login(url, B, request_code(url, B) or "")
    with HubStore(url, email=B) as store:
        assert store.read(BIG) == BODY
        with store.open(SPOILT_STREAMED) as f:
            assert f.read() == STREAMED
        _spoil(s3rver, _presigned(alice, SPOILT))
        _spoil(s3rver, _presigned(alice, SPOILT_STREAMED))
        with pytest.raises(StoreError, match="SHA-256"):
            store.read(SPOILT)
        with pytest.raises(StoreError, match="SHA-256"):
            store.open(SPOILT).read()
        with pytest.raises(StoreError, match="SHA-256"), store.open(SPOILT_STREAMED) as f:
            f.read()
