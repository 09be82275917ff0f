"""Fixtures for the tests over remote stores (store, RPC and FL tests alike), loaded as a
plugin by tests/conftest.py: session-wide servers (see remote_servers.py), started only
when a test asks for one, and, per test, a fresh prefix on one of them (a :class:`Target`).

Tests import helpers from ``remote_servers``, never from ``conftest``: several folders
have a conftest.py, and ``import conftest`` would get whichever was imported first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from remote_servers import (
    SFTP,
    MotoS3,
    Target,
    WebDAV,
    s3_target,
    sftp_target,
    webdav_target,
)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    server = MotoS3()
    yield server
    server.close()


@pytest.fixture(scope="session")
def webdav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDAV]:
    pytest.importorskip("webdav4")
    pytest.importorskip("wsgidav")
    server = WebDAV(tmp_path_factory.mktemp("webdav"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SFTP]:
    pytest.importorskip("sshfs")
    server = SFTP(tmp_path_factory.mktemp("sftp"), tmp_path_factory.mktemp("ssh-keys"))
    yield server
    server.close()


@pytest.fixture
def make_target(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Target]]:
    """``make_target(name)``: a fresh, empty prefix on that backend's session server."""
    pytest.importorskip("fsspec", reason="remote stores need: pip install 'fedbox[remote]'")
    made: list[Target] = []

    def make(name: str) -> Target:
        prefix = f"t-{uuid.uuid4().hex[:12]}"
        if name == "memory":
            target = Target("memory", f"memory://{prefix}", {}, {})
        elif name == "s3":
            target = s3_target(request.getfixturevalue("moto_s3"), prefix)
        elif name == "webdav":
            target = webdav_target(request.getfixturevalue("webdav_server"), prefix)
        elif name == "sftp":
            target = sftp_target(request.getfixturevalue("sftp_server"), prefix)
        else:
            raise ValueError(name)
        made.append(target)
        return target

    yield make
    for target in made:
        target.close()
