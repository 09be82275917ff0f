"""RemoteStore passes the shared Store checks (``fedbox.testing``) on every backend,
against real servers on 127.0.0.1 (moto S3, wsgidav WebDAV, asyncssh SFTP) and in memory."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from remote_servers import REMOTES, Target

from fedbox.store.remote import RemoteStore
from fedbox.testing import STORE_CHECKS, check_store


@pytest.mark.parametrize("check", STORE_CHECKS)
@pytest.mark.parametrize("remote", REMOTES)
def test_remote_store_conforms(
    remote: str, check: str, make_target: Callable[[str], Target]
) -> None:
    check_store(
        lambda: make_target(remote).make(min_poll_interval=0.02, max_poll_interval=0.2),
        only=[check],
    )


@pytest.mark.parametrize("remote", REMOTES)
def test_has_no_local_path(remote: str, make_target: Callable[[str], Target]) -> None:
    store: RemoteStore = make_target(remote).make()
    store.put("a/f.request", b"x")
    assert store.local_path("a/f.request") is None
