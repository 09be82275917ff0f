"""One real hub per test module (starting a process costs about a second).

A module's hub keeps its data in SQLite + a folder unless the module overrides
``hub_backend`` (see ``hub_process.BACKENDS``): ``postgres-s3`` puts it in a fresh
PostgreSQL database (``$FEDBOX_TEST_POSTGRES``, an administrative URL) and a moto bucket.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hub_process import HubProcess
from remote_servers import s3_target

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from hub_cluster import Databases, HubCluster, admin_url, s3_env


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


def _new_cluster(data: Path, request: pytest.FixtureRequest, flags: tuple[str, ...]) -> HubCluster:
    """Two ``--dev`` hub processes over a fresh database and bucket prefix."""
    db = request.getfixturevalue("postgres").create()
    bucket = s3_target(request.getfixturevalue("moto_s3"), f"cluster-{uuid.uuid4().hex[:8]}")
    limits = ("--login-per-email", "10000", "--login-per-address", "10000")
    return HubCluster(data, db, bucket.url, s3_env(bucket.options), flags=(*limits, *flags))


@pytest.fixture(scope="module")
def cluster_flags() -> tuple[str, ...]:
    """Extra ``fedbox hub serve`` flags of the module's ``cluster``."""
    return ()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    cluster_flags: tuple[str, ...],
) -> Iterator[HubCluster]:
    """One cluster for the module (PostgreSQL + moto S3)."""
    made = _new_cluster(tmp_path_factory.mktemp("cluster"), request, cluster_flags)
    yield made
    made.stop()


@pytest.fixture
def make_cluster(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., HubCluster]]:
    """Start clusters of the test's own (``make_cluster(*flags)``), stopped after it."""
    made: list[HubCluster] = []

    def make(*flags: str) -> HubCluster:
        made.append(_new_cluster(tmp_path / f"cluster{len(made)}", request, flags))
        return made[-1]

    yield make
    for one in made:
        one.stop()
