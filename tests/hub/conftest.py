"""One real hub per test module (starting a process costs about a second).

A module's hub keeps its data in SQLite + a folder unless the module overrides
``hub_backend`` (see ``hub_process.BACKENDS``): ``postgres-s3`` puts it in a fresh
PostgreSQL database (``$FEDBOX_TEST_POSTGRES``, an administrative URL) and a moto bucket.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_process import HubProcess
from remote_servers import s3_target

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from hub_cluster import Databases, admin_url, s3_env


@pytest.fixture(scope="session")
def postgres() -> Iterator[Databases]:
    """Makes fresh databases on the test PostgreSQL; skips (fails under CI) without one."""
    try:
        databases = Databases()
    except Exception as exc:  # psycopg missing or the server unreachable, one reason to show
        reason = f"PostgreSQL at {admin_url()} (set $FEDBOX_TEST_POSTGRES) unusable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="module")
def backend_flags(request: pytest.FixtureRequest, hub_backend: str) -> tuple[tuple[str, ...], dict]:
    """The ``fedbox hub serve`` flags and environment for ``hub_backend``."""
    if hub_backend == "sqlite":
        return (), {}
    db = request.getfixturevalue("postgres").create()
    bucket = s3_target(request.getfixturevalue("moto_s3"), f"hub-{uuid.uuid4().hex[:8]}")
    return ("--db", db, "--blobs", bucket.url), s3_env(bucket.options)


@pytest.fixture(scope="module")
def hub_backend() -> str:
    return "sqlite"


@pytest.fixture(scope="module")
def hub_args() -> tuple[str, ...]:
    """Extra ``fedbox hub`` arguments; a module overrides this to start its hub otherwise."""
    return ()


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory,
    hub_args: tuple[str, ...],
    backend_flags: tuple[tuple[str, ...], dict],
) -> Iterator[HubProcess]:
    flags, env = backend_flags
    server = HubProcess(Path(tmp_path_factory.mktemp("hub")), *flags, *hub_args, env=env)
    yield server
    server.stop()
