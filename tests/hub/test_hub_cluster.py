"""Two hub processes over one PostgreSQL database and one S3 bucket act as one hub.

Whatever a client does through one process (files, conditional writes, logins, refresh
tokens, login rate limits) holds through the other: nothing lives in a process alone.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hub_process import client_for, login
from remote_servers import s3_target

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from hub_cluster import Databases, HubCluster, s3_env

A, B = "alice@x.org", "bob@x.org"
SITE = f"datasites/{A}"


def _cluster(
    data: Path, postgres: Databases, moto_s3: object, flags: tuple[str, ...] = ()
) -> HubCluster:
    bucket = s3_target(moto_s3, f"cluster-{uuid.uuid4().hex[:8]}")  # type: ignore[arg-type]
    extra = flags or ("--login-per-email", "10000", "--login-per-address", "10000")
    return HubCluster(data, postgres.create(), bucket.url, s3_env(bucket.options), flags=extra)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres: Databases, moto_s3: object
) -> Iterator[HubCluster]:
    made = _cluster(tmp_path_factory.mktemp("cluster"), postgres, moto_s3)
    yield made
    made.stop()


def test_a_file_written_through_one_process_is_read_through_the_other(
    cluster: HubCluster,
) -> None:
    one, two = (client_for(url, A) for url in cluster.urls)
    body = uuid.uuid4().bytes * 1000
    put = one.put(f"/api/v1/files/{SITE}/shared.bin", content=body)
    assert put.status_code in (200, 201), put.text
    got = two.get(f"/api/v1/files/{SITE}/shared.bin")
    assert got.content == body
    assert got.headers["x-fedbox-version"] == str(put.json()["version"])


def test_a_token_from_one_process_works_on_the_other(cluster: HubCluster) -> None:
    token = login(cluster.urls[0], A)["access_token"]
    answer = httpx.get(
        f"{cluster.urls[1]}/api/v1/list", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text


def test_conditional_writes_racing_through_both_processes_have_one_winner(
    cluster: HubCluster,
) -> None:
    clients = [client_for(url, A) for url in cluster.urls]
    path = f"/api/v1/files/{SITE}/race.txt"
    version = clients[0].put(path, content=b"base").json()["version"]
    for round_ in range(5):
        answers = _race(clients, path, round_, version)
        assert sorted(a.status_code for a in answers) == [200] + [412] * 7, answers
        version = next(a.json()["version"] for a in answers if a.is_success)
    assert clients[1].head(path).headers["x-fedbox-version"] == str(version)


def _race(clients: list[httpx.Client], path: str, round_: int, base: int) -> list[httpx.Response]:
    """Eight writes over version ``base`` at once, alternating between the processes."""
    start = threading.Barrier(8)
    answers: list[httpx.Response] = []

    def write(n: int) -> None:
        start.wait()
        answers.append(
            clients[n % 2].put(
                path, content=f"{round_}-{n}".encode(), headers={"If-Match": str(base)}
            )
        )

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_a_code_asked_at_one_process_logs_in_at_the_other(cluster: HubCluster) -> None:
    first, second = cluster.urls
    code = httpx.post(f"{first}/api/v1/auth/code", json={"email": B}).json()["code"]
    answer = httpx.post(f"{second}/api/v1/auth/token", json={"email": B, "code": code})
    assert answer.status_code == 200, answer.text


def test_a_refresh_token_replayed_at_the_other_process_revokes_the_session(
    cluster: HubCluster,
) -> None:
    first, second = cluster.urls
    tokens = login(first, B)
    used = tokens["refresh_token"]
    rotated = httpx.post(f"{first}/api/v1/auth/refresh", json={"refresh_token": used})
    assert rotated.status_code == 200
    replay = httpx.post(f"{second}/api/v1/auth/refresh", json={"refresh_token": used})
    assert replay.status_code == 401
    fresh = rotated.json()["refresh_token"]
    after = httpx.post(f"{first}/api/v1/auth/refresh", json={"refresh_token": fresh})
    assert after.status_code == 401  # the replay ended the session for its owner too


def test_login_limits_count_hits_on_every_process(
    tmp_path: Path, postgres: Databases, moto_s3: object
) -> None:
    strict = _cluster(tmp_path, postgres, moto_s3, ("--login-per-email", "3"))
    try:
        statuses = [
            httpx.post(f"{strict.urls[n % 2]}/api/v1/auth/code", json={"email": A}).status_code
            for n in range(4)
        ]
    finally:
        strict.stop()
    assert statuses == [200, 200, 200, 429]
