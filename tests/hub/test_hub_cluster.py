"""Two hub processes over one PostgreSQL database and one S3 bucket act as one hub.

Whatever a client does through one process (files, conditional writes, logins, refresh
tokens, login rate limits) holds through the other: nothing lives in a process alone.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hub_process import HubProcess, client_for, login
from websockets.sync.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from hub_cluster import HubCluster

A, B = "alice@x.org", "bob@x.org"
SITE = f"datasites/{A}"


@pytest.fixture(scope="module")
def cluster_flags() -> tuple[str, ...]:
    # Writes are pushed to the other process by NOTIFY alone: the change log is looked at
    # for missed ones only every 10 minutes.
    return ("--feed-check", "600")


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


def test_rules_written_through_one_process_apply_at_the_other(cluster: HubCluster) -> None:
    alice, bob = client_for(cluster.urls[0], A), client_for(cluster.urls[1], B)
    rules = f"/api/v1/files/{SITE}/club/syft.pub.yaml"
    alice.put(f"/api/v1/files/{SITE}/club/note.txt", content=b"for bob").raise_for_status()
    assert bob.get(f"/api/v1/files/{SITE}/club/note.txt").status_code == 404
    grant = 'rules:\n  - pattern: "**"\n    access: {read: [bob@x.org]}\n'
    alice.put(rules, content=grant.encode()).raise_for_status()
    _until(lambda: bob.get(f"/api/v1/files/{SITE}/club/note.txt").status_code == 200)
    alice.delete(rules).raise_for_status()
    _until(lambda: bob.get(f"/api/v1/files/{SITE}/club/note.txt").status_code == 404)


def _until(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Wait for another process to act on a NOTIFY (milliseconds; the bound is generous)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the other process never applied the change"
        time.sleep(0.02)


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
    make_cluster: Callable[..., HubCluster],
) -> None:
    strict = make_cluster("--login-per-email", "3")
    statuses = [
        httpx.post(f"{strict.urls[n % 2]}/api/v1/auth/code", json={"email": A}).status_code
        for n in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def _socket(hub: HubProcess, email: str, after: int) -> ClientConnection:
    token = login(hub.url, email)["access_token"]
    return connect(
        f"ws://127.0.0.1:{hub.port}/api/v1/changes/ws?after={after}",
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=30,
    )


def _paths_pushed(socket: ClientConnection, until: str) -> list[str]:
    """Paths of the changes pushed, up to and including ``until``."""
    paths: list[str] = []
    while until not in paths:
        paths += [c["path"] for c in json.loads(socket.recv(timeout=30))["changes"]]
    return paths


def _head(client: httpx.Client) -> int:
    return int(client.get("/healthz").json()["head"])


def test_a_write_through_one_process_is_pushed_to_a_websocket_on_the_other(
    cluster: HubCluster,
) -> None:
    one = client_for(cluster.urls[0], A)
    with _socket(cluster.procs[1], A, _head(one)) as socket:
        for n in range(3):
            path = f"{SITE}/push/{n}.txt"
            one.put(f"/api/v1/files/{path}", content=b"x").raise_for_status()
            assert _paths_pushed(socket, path)[-1] == path


def test_a_feed_on_the_other_process_follows_rule_changes_at_once(cluster: HubCluster) -> None:
    """Bob's socket on process 2 is pushed what a grant written through process 1 opens,
    from the next change on, and nothing it closes once the grant is withdrawn."""
    alice = client_for(cluster.urls[0], A)
    club, rules = f"{SITE}/feed-club", f"/api/v1/files/{SITE}/feed-club/syft.pub.yaml"
    inbox = f"syft_outbox_inbox_{A}_to_{B}/feed-club"
    with _socket(cluster.procs[1], B, _head(alice)) as bob:
        grant = 'rules:\n  - pattern: "*.txt"\n    access: {read: [bob@x.org]}\n'
        alice.put(rules, content=grant.encode()).raise_for_status()
        alice.put(f"/api/v1/files/{club}/open.txt", content=b"x").raise_for_status()
        assert _paths_pushed(bob, f"{club}/open.txt")
        alice.delete(rules).raise_for_status()
        alice.put(f"/api/v1/files/{club}/closed.txt", content=b"x").raise_for_status()
        alice.put(f"/api/v1/files/{inbox}/marker.request", content=b"x").raise_for_status()
        assert f"{club}/closed.txt" not in _paths_pushed(bob, f"{inbox}/marker.request")


def _insert_change_without_notify(db: str, path: str) -> None:
    """A change committed by something that sends no NOTIFY (as if it were lost)."""
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO changes (op, path, size, sha256, writer, time) "
            "VALUES ('delete', %s, NULL, NULL, %s, %s)",
            (path, A, time.time()),
        )


def _drop_listeners(db: str) -> None:
    """Cut every hub process's LISTEN connection, as a network blip would."""
    import psycopg

    name = db.rsplit("/", 1)[1]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND query LIKE 'LISTEN%%'",
            (name,),
        )


def test_a_missed_notification_delays_a_change_never_loses_it(
    make_cluster: Callable[..., HubCluster],
) -> None:
    watched = make_cluster("--feed-check", "0.5")
    one = client_for(watched.urls[0], A)
    with _socket(watched.procs[1], A, _head(one)) as socket:
        _insert_change_without_notify(watched.db, f"{SITE}/unannounced.txt")
        assert _paths_pushed(socket, f"{SITE}/unannounced.txt")
        _drop_listeners(watched.db)
        one.put(f"/api/v1/files/{SITE}/during-the-cut.txt", content=b"x").raise_for_status()
        assert _paths_pushed(socket, f"{SITE}/during-the-cut.txt")


X_SHA256 = hashlib.sha256(b"x").hexdigest()


def _seqs_pushed(socket: ClientConnection, count: int) -> list[int]:
    seqs: list[int] = []
    while len(seqs) < count:
        seqs += [c["seq"] for c in json.loads(socket.recv(timeout=30))["changes"]]
    return seqs


def test_concurrent_writers_on_both_processes_are_pushed_in_order_without_gaps(
    cluster: HubCluster,
) -> None:
    """Writers take the hub-wide turn inside one statement and commit behind it: a
    change must still never become visible before one numbered below it, or a feed
    that moved past the gap would skip it for good."""
    clients = [client_for(url, A) for url in cluster.urls]
    start = _head(clients[0])
    writers, writes = 8, 15

    def write(k: int) -> None:
        client = clients[k % 2]
        for n in range(writes):
            if n % 3:
                path = f"/api/v1/files/{SITE}/order/{k}-{n}.txt"
                client.put(path, content=b"x").raise_for_status()
            else:
                batch = [
                    {"path": f"{SITE}/order/{k}-{n}-{m}.txt", "data": "eA==", "sha256": X_SHA256}
                    for m in range(3)
                ]
                client.post("/api/v1/batch", json={"files": batch}).raise_for_status()

    with _socket(cluster.procs[0], A, start) as one, _socket(cluster.procs[1], A, start) as two:
        threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = writers * (writes + 2 * len(range(0, writes, 3)))
        assert _head(clients[0]) == start + total
        expected = list(range(start + 1, start + total + 1))
        assert _seqs_pushed(one, total) == expected
        assert _seqs_pushed(two, total) == expected
