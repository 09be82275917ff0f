"""A revoked login ends at once on every hub process, not when a cached check runs out.

The processes here trust a login they found live for ten minutes (``--session-check
600``): only the revocation's notification can make the other process refuse the very
next request, so these tests fail if it is not sent or not heard.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hub_process import login

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from hub_cluster import HubCluster


@pytest.fixture(scope="module")
def cluster_flags() -> tuple[str, ...]:
    return ("--session-check", "600")


def _file(url: str, email: str) -> str:
    return f"{url}/api/v1/files/datasites/{email}/note.txt"


def _bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def test_a_replay_on_one_process_ends_access_on_the_other_at_once(cluster: HubCluster) -> None:
    first, second = cluster.urls
    email = "replayed@x.org"
    tokens = login(first, email)
    put = httpx.put(_file(second, email), content=b"x", headers=_bearer(tokens))
    assert put.status_code in (200, 201), "the second process has seen the login live"
    used = tokens["refresh_token"]
    assert httpx.post(f"{first}/api/v1/auth/refresh", json={"refresh_token": used}).is_success
    replay = httpx.post(f"{first}/api/v1/auth/refresh", json={"refresh_token": used})
    assert replay.status_code == 401, "the replay revoked the session"
    assert httpx.get(_file(second, email), headers=_bearer(tokens)).status_code == 401


def test_the_revoke_command_ends_access_on_every_process_at_once(
    cluster: HubCluster, tmp_path: Path
) -> None:
    email = "leaver@x.org"
    tokens = login(cluster.urls[0], email)
    for url in cluster.urls:
        put = httpx.put(_file(url, email), content=b"x", headers=_bearer(tokens))
        assert put.status_code in (200, 201)
    done = subprocess.run(
        [sys.executable, "-m", "fedbox", "hub", "revoke", email,
         "--data", str(tmp_path), "--db", cluster.db],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "revoked 1 session" in done.stdout
    for url in cluster.urls:
        assert httpx.get(_file(url, email), headers=_bearer(tokens)).status_code == 401
