"""A hub upgraded in place keeps every file and token (Alembic, ``fedbox hub migrate``).

``data/hub-before-migrations`` is a hub made by the code before migrations existed
(``fedbox hub serve`` of issue 13, logins with tokens that live for a century): its
database as SQL, its blobs, its signing key and the tokens it handed out.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hub_process import HubProcess

from fedbox.hub.migrate import head, upgrade
from fedbox.hub.schema import metadata, open_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from hub_cluster import Databases

OLD = Path(__file__).parent / "data" / "hub-before-migrations"
A, B = "alice@x.org", "bob@x.org"


@pytest.fixture
def old_hub(tmp_path: Path) -> Path:
    data = tmp_path / "hub"
    shutil.copytree(OLD / "blobs", data / "blobs")
    shutil.copy(OLD / "hub.key", data / "hub.key")
    with sqlite3.connect(data / "hub.db") as db:
        db.executescript((OLD / "hub.sql").read_text())
    return data


def _rows(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query).fetchall()


def _fedbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedbox", "hub", *args], capture_output=True, text=True, timeout=120
    )


def test_serve_refuses_a_database_that_needs_migrating(old_hub: Path) -> None:
    done = _fedbox("serve", "--data", str(old_hub), "--port", "1", "--dev")
    assert done.returncode != 0
    assert "fedbox hub migrate" in done.stderr + done.stdout
    assert not _rows(old_hub / "hub.db", "SELECT * FROM sqlite_master WHERE name='keys'")


def test_a_migrated_hub_keeps_every_file_and_token(old_hub: Path) -> None:
    files = _rows(old_hub / "hub.db", "SELECT path, version, sha256, writer FROM files")
    changes = _rows(old_hub / "hub.db", "SELECT * FROM changes ORDER BY seq")
    codes = _rows(old_hub / "hub.db", "SELECT * FROM codes")
    assert len(files) == 5 and codes

    done = _fedbox("migrate", "--data", str(old_hub))
    assert done.returncode == 0, done.stderr
    assert f"from 0001 to {head()}" in done.stdout
    assert _rows(old_hub / "hub.db", "SELECT * FROM changes ORDER BY seq") == changes
    assert _rows(old_hub / "hub.db", "SELECT * FROM codes") == codes
    assert "newest schema" in _fedbox("migrate", "--data", str(old_hub)).stdout

    tokens = json.loads((OLD / "tokens.json").read_text())
    hub = HubProcess(old_hub)
    try:
        for path, version, sha256, writer in files:
            token = tokens[writer]["access_token"]  # signed by the old hub.key
            got = httpx.get(
                f"{hub.url}/api/v1/files/{path}", headers={"Authorization": f"Bearer {token}"}
            )
            assert got.status_code == 200, (path, got.text)
            assert got.headers["x-fedbox-version"] == str(version)
            assert got.headers["x-fedbox-sha256"] == sha256
        assert httpx.get(f"{hub.url}/healthz").json()["head"] == changes[-1][0]
        for email in (A, B):
            refreshed = httpx.post(
                f"{hub.url}/api/v1/auth/refresh",
                json={"refresh_token": tokens[email]["refresh_token"]},
            )
            assert refreshed.status_code == 200, refreshed.text
            assert refreshed.json()["email"] == email
    finally:
        hub.stop()


def _schema_drift(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = open_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()


def test_the_migrations_build_the_schema_the_code_declares_on_sqlite(tmp_path: Path) -> None:
    assert _schema_drift(f"sqlite:///{tmp_path / 'hub.db'}") == []


def test_the_migrations_build_the_schema_the_code_declares_on_postgresql(
    postgres: Databases,
) -> None:
    assert _schema_drift(postgres.create()) == []
