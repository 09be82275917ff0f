"""RemoteStore passes the shared Store conformance suite on every backend, against real
servers on 127.0.0.1 (moto S3, wsgidav WebDAV, asyncssh SFTP) and in memory."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from remote_servers import REMOTES, Target
from store_conformance import StoreConformance

from fedbox.store.remote import RemoteStore


class TestRemoteStore(StoreConformance):
    @pytest.fixture(params=REMOTES)
    def store(
        self, request: pytest.FixtureRequest, make_target: Callable[[str], Target]
    ) -> RemoteStore:
        return make_target(request.param).make(min_poll_interval=0.02, max_poll_interval=0.2)

    def test_has_no_local_path(self, store: RemoteStore) -> None:
        store.put("a/f.request", b"x")
        assert store.local_path("a/f.request") is None
