"""A store URL naming a bucket that does not exist (issue 12, point 11): every operation
says so, instead of reporting each file as missing, and the CLI ends with that line."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from cli_process import run_cli
from remote_servers import MotoS3

from fedbox.errors import NotFound, StoreError
from fedbox.store.remote import RemoteStore

DID = "datasites/a@x.org/public/did.json"


def options(server: MotoS3) -> dict[str, object]:
    return {
        "endpoint_url": server.endpoint,
        "client_kwargs": {"region_name": "us-east-1"},
        "key": server.key,
        "secret": server.secret,
    }


@pytest.mark.parametrize("operation", ["exists", "read", "put", "list"])
def test_every_operation_says_the_bucket_does_not_exist(moto_s3: MotoS3, operation: str) -> None:
    bucket = f"absent-{uuid.uuid4().hex[:8]}"
    store = RemoteStore(f"s3://{bucket}/fed", retry_timeout=1, **options(moto_s3))
    calls = {
        "exists": lambda: store.exists(DID),
        "read": lambda: store.read(DID),
        "put": lambda: store.put(DID, b"{}"),
        "list": lambda: store.list(""),
    }
    try:
        with pytest.raises(StoreError, match=f"bucket '{bucket}' .* does not exist") as caught:
            calls[operation]()
        assert not isinstance(caught.value, NotFound)
        assert "does not create buckets" in str(caught.value)
    finally:
        store.close()


def test_the_cli_reports_a_missing_bucket_in_one_line(moto_s3: MotoS3) -> None:
    env = {**os.environ, "FEDBOX_STORAGE_OPTIONS": json.dumps({"s3": options(moto_s3)})}
    args = ["cleanup", "--root", "s3://absent-bucket/fed", "--email", "a@x.org"]
    result = run_cli(*args, timeout=60, env=env)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "bucket 'absent-bucket' of s3://absent-bucket/fed does not exist" in out
    assert "no such file in store" not in out
