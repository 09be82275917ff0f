"""``POST /api/v1/batch`` on a real hub (SQLite + folder, and PostgreSQL + S3): every file
answered on its own, exactly as its own PUT would be, and accepted ones in the feed."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
import pytest
from hub_process import BACKENDS, HubProcess, client_for

A, B, C = "alice@x.org", "bob@x.org", "carol@x.org"
RULES = 'rules:\n  - pattern: "public/**"\n    access: {read: ["*"]}\n'
QUOTA_FILES = 20


@pytest.fixture(scope="module", params=BACKENDS)
def hub_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def hub_args() -> tuple[str, ...]:
    return ("--quota-files", str(QUOTA_FILES))


@pytest.fixture(scope="module")
def clients(hub: HubProcess) -> dict[str, httpx.Client]:
    made = {u: client_for(hub.url, u) for u in (A, B, C)}
    made[A].put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=RULES).raise_for_status()
    return made


def _item(path: str, data: bytes, **condition: Any) -> dict[str, Any]:
    return {
        "path": path, "sha256": hashlib.sha256(data).hexdigest(),
        "data": base64.b64encode(data).decode(), **condition,
    }  # fmt: skip


def _batch(client: httpx.Client, *items: dict[str, Any]) -> list[dict[str, Any]]:
    answer = client.post("/api/v1/batch", json={"files": list(items)})
    answer.raise_for_status()
    results: list[dict[str, Any]] = answer.json()["results"]
    assert [r["path"] for r in results] == [i["path"] for i in items]
    return results


def _put_alone(client: httpx.Client, path: str, data: bytes) -> tuple[int, str]:
    answer = client.put(f"/api/v1/files/{path}", content=data)
    return answer.status_code, answer.json()["detail"]


def test_allowed_forbidden_hidden_and_tricky_paths_are_answered_as_their_puts(
    clients: dict[str, httpx.Client],
) -> None:
    bob = clients[B]
    head = int(httpx.get(f"{bob.base_url}/healthz").json()["head"])
    refused = [
        f"datasites/{A}/public/x.txt",  # readable, not writable: 403
        f"datasites/{A}/private/y.txt",  # hidden: 404, as if missing
    ]
    tricks = [  # as a PUT's path reads once its URL is decoded: each a 400
        f"datasites/{B}/../{A}/z.txt",
        f"/datasites/{B}/abs.txt",
        f"datasites/{B}//double.txt",
        f"datasites/{B}/./dot.txt",
        f"datasites/{B}/nul\x00.txt",
        f"datasites/{B}/back\\slash.txt",
        f"datasites/{B}%2f..%2f{A}/x",
        "etc/passwd",
        "datasites",
    ]
    ok = [f"datasites/{B}/one.txt", f"datasites/{B}/sub/two.txt"]
    items = [
        _item(ok[0], b"one"), *(_item(p, b"no") for p in refused + tricks), _item(ok[1], b"two")
    ]  # fmt: skip
    results = _batch(bob, *items)
    assert [r["status"] for r in results] == [200, 403, 404, *[400] * len(tricks), 200]
    for result in results[1:3]:
        assert (result["status"], result["detail"]) == _put_alone(bob, result["path"], b"no")
    assert all(r["file"] is None for r in results[1:-1])
    assert bob.get(f"/api/v1/files/{ok[0]}").content == b"one"
    assert bob.get(f"/api/v1/files/{ok[1]}").content == b"two"
    assert results[0]["file"]["sha256"] == hashlib.sha256(b"one").hexdigest()
    # Accepted files are ordinary writes: one change each, in the feed.
    changes = bob.get("/api/v1/changes", params={"after": head}).json()["changes"]
    assert [(c["op"], c["path"], c["seq"]) for c in changes] == [
        ("put", ok[0], results[0]["file"]["version"]),
        ("put", ok[1], results[-1]["file"]["version"]),
    ]


def test_conditions_inside_a_batch_apply_in_order(clients: dict[str, httpx.Client]) -> None:
    bob = clients[B]
    path = f"datasites/{B}/cond/f.txt"
    v1 = bob.put(f"/api/v1/files/{path}", content=b"v1").json()["version"]
    results = _batch(
        bob,
        _item(path, b"mine", if_match=v1),
        _item(f"datasites/{B}/cond/new.txt", b"new", if_absent=True),
        _item(path, b"stale", if_match=v1),  # the first item moved it on: a conflict
        _item(f"datasites/{B}/cond/new.txt", b"again", if_absent=True),
        _item(f"datasites/{B}/cond/none.txt", b"x", if_match=v1),
    )
    assert [r["status"] for r in results] == [200, 200, 412, 412, 412]
    assert "not at version" in results[2]["detail"]
    assert "exists" in results[3]["detail"]
    assert "absent" in results[4]["detail"]
    assert bob.get(f"/api/v1/files/{path}").content == b"mine"
    assert bob.get(f"/api/v1/files/datasites/{B}/cond/new.txt").content == b"new"
    assert bob.get(f"/api/v1/files/datasites/{B}/cond/none.txt").status_code == 404


def test_a_path_written_twice_in_a_batch_gets_two_versions_in_order(
    clients: dict[str, httpx.Client],
) -> None:
    bob = clients[B]
    head = int(httpx.get(f"{bob.base_url}/healthz").json()["head"])
    twice, other = f"datasites/{B}/twice/t.txt", f"datasites/{B}/twice/o.txt"
    results = _batch(
        bob, _item(twice, b"first"), _item(other, b"other"), _item(twice, b"second"),
        _item(twice, b"third"),
    )  # fmt: skip
    assert [r["status"] for r in results] == [200] * 4
    versions = [r["file"]["version"] for r in results]
    assert versions == sorted(versions) and len(set(versions)) == 4
    assert bob.get(f"/api/v1/files/{twice}").content == b"third"
    assert bob.head(f"/api/v1/files/{twice}").headers["x-fedbox-version"] == str(versions[-1])
    changes = bob.get("/api/v1/changes", params={"after": head}).json()["changes"]
    assert [(c["path"], c["seq"]) for c in changes] == [
        (twice, versions[0]), (other, versions[1]), (twice, versions[2]), (twice, versions[3])
    ]  # fmt: skip


def test_the_quota_stops_a_batch_midway_and_keeps_the_files_before(
    hub: HubProcess, clients: dict[str, httpx.Client]
) -> None:
    carol = clients[C]
    paths = [f"datasites/{C}/q/{i}.txt" for i in range(QUOTA_FILES + 2)]
    results = _batch(carol, *(_item(p, p.encode()) for p in paths))
    assert [r["status"] for r in results] == [200] * QUOTA_FILES + [413, 413]
    assert "quota" in results[-1]["detail"]
    listed = carol.get("/api/v1/list", params={"prefix": f"datasites/{C}"}).json()["files"]
    assert sorted(f["path"] for f in listed) == sorted(paths[:QUOTA_FILES])
    if (hub.data / "blobs").is_dir():  # the folder store: refused files left no blob
        assert list((hub.data / "blobs" / "tmp").iterdir()) == []
        stored = [b for d in (hub.data / "blobs").iterdir() if d.name != "tmp" for b in d.iterdir()]
        assert len(stored) == len(list(_all_files(clients)))


def _all_files(clients: dict[str, httpx.Client]) -> list[str]:
    return [
        f["path"]
        for user in (A, B, C)
        for f in clients[user]
        .get("/api/v1/list", params={"prefix": f"datasites/{user}"})
        .json()["files"]
    ]


def test_a_bad_hash_refuses_that_file_alone(clients: dict[str, httpx.Client]) -> None:
    bob = clients[B]
    bad = _item(f"datasites/{B}/hash/bad.txt", b"actual bytes")
    bad["sha256"] = hashlib.sha256(b"other bytes").hexdigest()
    results = _batch(bob, _item(f"datasites/{B}/hash/good.txt", b"fine"), bad)
    assert [r["status"] for r in results] == [200, 400]
    alone = bob.put(
        f"/api/v1/files/datasites/{B}/hash/bad.txt", content=b"actual bytes",
        headers={"X-Content-SHA256": bad["sha256"]},
    )  # fmt: skip
    assert (400, alone.json()["detail"]) == (results[1]["status"], results[1]["detail"])
    assert bob.get(f"/api/v1/files/datasites/{B}/hash/bad.txt").status_code == 404
    assert bob.get(f"/api/v1/files/datasites/{B}/hash/good.txt").content == b"fine"


def test_a_rule_file_written_in_a_batch_governs_the_writes_after_it(
    clients: dict[str, httpx.Client],
) -> None:
    alice, bob = clients[A], clients[B]
    folder = f"datasites/{A}/team"
    grant = 'rules:\n  - pattern: "**"\n    access: {read: [bob@x.org], write: [bob@x.org]}\n'
    assert [
        r["status"] for r in _batch(alice, _item(f"{folder}/syft.pub.yaml", grant.encode()))
    ] == [200]
    assert [r["status"] for r in _batch(bob, _item(f"{folder}/granted.txt", b"g"))] == [200]
    results = _batch(
        alice,
        _item(f"{folder}/syft.pub.yaml", b'rules:\n  - pattern: "**"\n    access: {read: []}\n'),
        _item(f"{folder}/after.txt", b"a"),
    )
    assert [r["status"] for r in results] == [200, 200]
    # Bob's write, batched after the grant's removal, is refused like a later PUT.
    assert [r["status"] for r in _batch(bob, _item(f"{folder}/bob.txt", b"b"))] == [404]
    assert _put_alone(bob, f"{folder}/bob.txt", b"b")[0] == 404


def test_malformed_and_oversized_batches_are_refused_whole(
    clients: dict[str, httpx.Client],
) -> None:
    bob = clients[B]
    assert bob.post("/api/v1/batch", content=b"not json").status_code == 422
    item = _item(f"datasites/{B}/b64.txt", b"x")
    item["data"] = "***"
    assert [r["status"] for r in _batch(bob, item)] == [400]
    big = _item(f"datasites/{B}/big.bin", b"\0" * ((1 << 20) + 1))
    assert [r["status"] for r in _batch(bob, big)] == [413]
