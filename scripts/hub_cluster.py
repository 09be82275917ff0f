"""Run the hub at scale on one machine: N ``fedbox hub serve`` processes over one fresh
PostgreSQL database and one S3 bucket (a moto server, or a bucket you name).

Run: ``.venv/bin/python scripts/hub_cluster.py [--hubs 2] [--data DIR]
[--postgres postgresql://postgres@127.0.0.1:5432/test]`` (or ``make hub-cluster``)

It prints the ``hub://`` root that lists every process (clients fail over between them)
and serves until Ctrl-C, then stops the processes and drops the database it made.
The tests (tests/hub) and ``benchmarks/hub_scale.py`` start their clusters with the
classes here. ``--postgres`` is an administrative URL: a database is created beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hub"))
from hub_process import NO_LOGIN_LIMITS, HubProcess, free_port

__all__ = ["ENV_POSTGRES", "Databases", "HubCluster", "MotoServer", "s3_env"]

ENV_POSTGRES = "FEDBOX_TEST_POSTGRES"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def admin_url() -> str:
    return os.environ.get(ENV_POSTGRES, DEFAULT_POSTGRES)


class Databases:
    """Fresh, uniquely named databases beside ``admin`` (other runs may share the server),
    all dropped by :meth:`drop_all`."""

    def __init__(self, admin: str | None = None) -> None:
        import psycopg

        self.admin = admin or admin_url()
        # Raises psycopg.OperationalError when the server cannot be reached.
        psycopg.connect(self.admin, connect_timeout=5).close()
        self._made: list[str] = []

    def _run(self, statement: str, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(name)))

    def create(self) -> str:
        """The URL of a new empty database."""
        name = f"fedbox_{os.getpid()}_{secrets.token_hex(4)}"
        self._run("CREATE DATABASE {}", name)
        self._made.append(name)
        parts = urlsplit(self.admin)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def drop_all(self) -> None:
        for name in self._made:
            self._run("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)
        self._made.clear()


class MotoServer:
    """moto's S3 in a process of its own (``python -m moto.server``) with one bucket."""

    def __init__(self, bucket: str = "fedbox-hub") -> None:
        self.bucket = bucket
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.put(f"{self.endpoint}/{bucket}", timeout=2).raise_for_status()
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError("moto did not start within 30 s") from None
                time.sleep(0.1)  # still binding its port

    @property
    def options(self) -> dict[str, object]:
        """Storage options for s3fs (moto takes any key when IAM auth is off)."""
        return {
            "endpoint_url": self.endpoint,
            "key": "fedbox",
            "secret": "fedbox-secret",
            "client_kwargs": {"region_name": "us-east-1"},
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def s3_env(options: Mapping[str, object]) -> dict[str, str]:
    """The environment that hands S3 storage options to hub processes (secrets stay off
    the command line, where every user of the machine could read them)."""
    return {"FEDBOX_STORAGE_OPTIONS": json.dumps({"s3": dict(options)})}


class HubCluster:
    """``hubs`` hub processes over database ``db`` and blobs at ``blobs``.

    Each has a data folder of its own under ``data`` (``hub0``, ``hub1``...): they share
    nothing but the database and the bucket, as on separate machines.
    """

    def __init__(
        self,
        data: Path,
        db: str,
        blobs: str,
        env: Mapping[str, str],
        hubs: int = 2,
        flags: tuple[str, ...] = NO_LOGIN_LIMITS,
    ) -> None:
        self.procs: list[HubProcess] = []
        self.db = db
        self.blobs = blobs
        self.flags = ("--db", db, "--blobs", blobs, *flags)
        self.data = data
        self.env = dict(env)
        try:
            for _ in range(hubs):
                self.add()
        except BaseException:
            self.stop()
            raise

    def add(self) -> HubProcess:
        proc = HubProcess(self.data / f"hub{len(self.procs)}", *self.flags, env=self.env)
        self.procs.append(proc)
        return proc

    @property
    def urls(self) -> list[str]:
        return [p.url for p in self.procs]

    @property
    def root(self) -> str:
        """The store root that lists every process: ``hub://h1:p1,h2:p2``."""
        return "hub://" + ",".join(urlsplit(u).netloc for u in self.urls)

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


@contextlib.contextmanager
def local_cluster(data: Path, hubs: int = 2) -> Iterator[HubCluster]:
    """A cluster over a new database on the local PostgreSQL and a new moto server."""
    databases = Databases()
    moto = MotoServer()
    try:
        cluster = HubCluster(
            data, databases.create(), f"s3://{moto.bucket}/blobs", s3_env(moto.options), hubs
        )
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        moto.stop()
        databases.drop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hubs", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--postgres", default=None, help=f"admin URL [${ENV_POSTGRES}]")
    args = parser.parse_args()
    if args.postgres:
        os.environ[ENV_POSTGRES] = args.postgres
    data = args.data or Path(tempfile.mkdtemp(prefix="fedbox-hub-cluster-"))
    with local_cluster(data, args.hubs) as cluster:
        print(f"{len(cluster.procs)} hub processes: {' '.join(cluster.urls)}")
        print(f"store root for participants: {cluster.root}")
        print("Ctrl-C stops them and drops the database.", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwinds like Ctrl-C
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
