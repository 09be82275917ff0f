"""Big files downloaded straight from the bucket (presigned URLs), access still the hub's.

The hub runs over PostgreSQL + moto S3 with ``--direct-downloads-above 1000``: a GET of
a bigger file answers 307 to a presigned URL, smaller ones are served as before, and a
file the caller may not read answers 404 with no URL in it. moto checks no signatures
in query strings (with IAM auth on it cannot serve presigned URLs at all), so this moto
runs without auth and the test checks the URL is signed and short-lived;
test_hub_direct_signed.py runs against a server that verifies signatures and expiry.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hub_process import HubProcess, client_for

from fedbox.hub.client import HubStore
from fedbox.hub.credentials import login, request_code

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from hub_cluster import Databases, MotoServer, s3_env

A, B = "alice@x.org", "bob@x.org"
BIG = f"datasites/{A}/public/big.bin"
SMALL = f"datasites/{A}/public/small.txt"
PRIVATE = f"datasites/{A}/private/big.bin"
RULES = 'rules:\n  - pattern: "public/**"\n    access: {read: ["*"]}\n'
BODY = bytes(range(256)) * 40


@pytest.fixture(scope="module")
def backend_flags(postgres: Databases) -> Iterator[tuple[tuple[str, ...], dict[str, str]]]:
    moto = MotoServer()
    yield ("--db", postgres.create(), "--blobs", f"s3://{moto.bucket}/hub"), s3_env(moto.options)
    moto.stop()


@pytest.fixture(scope="module")
def hub_args() -> tuple[str, ...]:
    return ("--direct-downloads-above", "1000")


@pytest.fixture(scope="module")
def alice(hub: HubProcess) -> httpx.Client:
    client = client_for(hub.url, A)
    client.put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=RULES).raise_for_status()
    for path, body in ((BIG, BODY), (SMALL, b"small"), (PRIVATE, BODY)):
        client.put(f"/api/v1/files/{path}", content=body).raise_for_status()
    return client


def test_a_big_file_redirects_to_a_url_that_needs_no_hub_token(alice: httpx.Client) -> None:
    answer = alice.get(f"/api/v1/files/{BIG}")
    assert answer.status_code == 307
    assert answer.headers["x-fedbox-version"].isdigit()
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert {"Signature", "Expires"} <= set(query)  # SigV2 unless config_kwargs ask for v4
    bucket = httpx.get(answer.headers["location"])
    assert bucket.status_code == 200
    assert bucket.content == BODY


def test_a_small_file_is_served_by_the_hub(alice: httpx.Client) -> None:
    answer = alice.get(f"/api/v1/files/{SMALL}")
    assert answer.status_code == 200
    assert answer.content == b"small"


def test_a_file_the_caller_may_not_read_gives_no_url(hub: HubProcess, alice: httpx.Client) -> None:
    bob = client_for(hub.url, B)
    answer = bob.get(f"/api/v1/files/{PRIVATE}")
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert bob.get(f"/api/v1/files/{BIG}").status_code == 307


def test_uploads_still_go_through_the_hubs_checks(hub: HubProcess, alice: httpx.Client) -> None:
    bob = client_for(hub.url, B)
    assert bob.put(f"/api/v1/files/{PRIVATE}", content=b"mine now").status_code in (403, 404)
    assert alice.get(f"/api/v1/files/{PRIVATE}", follow_redirects=True).content == BODY


def test_a_hub_store_follows_the_redirect(hub: HubProcess, alice: httpx.Client) -> None:
    url = f"hub://127.0.0.1:{hub.port}"
    code = request_code(url, B)
    assert code is not None
    login(url, B, code)
    with HubStore(url, email=B) as store:
        assert store.read(BIG) == BODY
        with store.open(BIG) as f:
            assert f.read() == BODY
