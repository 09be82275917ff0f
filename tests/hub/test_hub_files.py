"""Files over HTTP on a real hub: streaming up and down, ranges, versions, 412, moves, lists."""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

import httpx
import pytest
from hub_process import HubProcess, client_for, raw_status
from waiting import wait_until

A, B = "alice@x.org", "bob@x.org"
OUT = f"syft_outbox_inbox_{A}_to_{B}/app"


@pytest.fixture(scope="module")
def alice(hub: HubProcess) -> httpx.Client:
    return client_for(hub.url, A)


@pytest.fixture(scope="module")
def bob(hub: HubProcess) -> httpx.Client:
    return client_for(hub.url, B)


def test_put_then_get_streams_the_bytes_with_version_digest_and_writer(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    body = bytes(range(256)) * 10_000
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    info = alice.put(f"/api/v1/files/{OUT}/big.bin", content=chunks).json()
    assert info["size"] == len(body)
    assert info["sha256"] == hashlib.sha256(body).hexdigest()
    assert info["writer"] == A
    got = bob.get(f"/api/v1/files/{OUT}/big.bin")
    assert got.content == body
    assert got.headers["x-fedbox-version"] == str(info["version"])


def test_range_download_returns_206_with_the_slice(alice: httpx.Client) -> None:
    alice.put(f"/api/v1/files/{OUT}/r.bin", content=b"0123456789")
    part = alice.get(f"/api/v1/files/{OUT}/r.bin", headers={"Range": "bytes=2-5"})
    assert part.status_code == 206
    assert part.content == b"2345"
    assert part.headers["content-range"] == "bytes 2-5/10"
    tail = alice.get(f"/api/v1/files/{OUT}/r.bin", headers={"Range": "bytes=-3"})
    assert tail.content == b"789"
    assert (
        alice.get(f"/api/v1/files/{OUT}/r.bin", headers={"Range": "bytes=20-"}).status_code == 416
    )


def test_versions_come_from_one_sequence_and_grow(alice: httpx.Client) -> None:
    v1 = alice.put(f"/api/v1/files/{OUT}/v.txt", content=b"1").json()["version"]
    v2 = alice.put(f"/api/v1/files/{OUT}/w.txt", content=b"2").json()["version"]
    v3 = alice.put(f"/api/v1/files/{OUT}/v.txt", content=b"3").json()["version"]
    assert v1 < v2 < v3


def test_conditional_writes_refuse_stale_versions_with_412(alice: httpx.Client) -> None:
    path = f"/api/v1/files/{OUT}/cond.txt"
    first = alice.put(path, content=b"a", headers={"If-None-Match": "*"})
    assert first.status_code == 200
    assert alice.put(path, content=b"b", headers={"If-None-Match": "*"}).status_code == 412
    version = first.json()["version"]
    assert alice.put(path, content=b"c", headers={"If-Match": str(version)}).status_code == 200
    assert alice.put(path, content=b"d", headers={"If-Match": str(version)}).status_code == 412
    assert alice.delete(path, headers={"If-Match": str(version)}).status_code == 412
    assert alice.get(path).content == b"c"


def test_two_writers_racing_on_one_version_exactly_one_wins(
    hub: HubProcess, alice: httpx.Client
) -> None:
    path = f"/api/v1/files/{OUT}/race.txt"
    base = alice.put(path, content=b"base").json()["version"]
    token = alice.headers["authorization"]
    barrier = threading.Barrier(8)
    statuses: dict[int, int] = {}

    def write(n: int) -> None:
        with httpx.Client(base_url=hub.url, headers={"Authorization": token}) as c:
            barrier.wait()
            statuses[n] = c.put(
                path, content=f"w{n}".encode(), headers={"If-Match": str(base)}
            ).status_code

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, s in statuses.items() if s == 200]
    assert len(winners) == 1
    assert sorted(statuses.values()) == [200] + [412] * 7
    assert alice.get(path).content == f"w{winners[0]}".encode()


def test_move_is_atomic_and_delete_removes(alice: httpx.Client) -> None:
    alice.put(f"/api/v1/files/{OUT}/m1.txt", content=b"moving")
    moved = alice.post("/api/v1/move", json={"src": f"{OUT}/m1.txt", "dst": f"{OUT}/m2.txt"})
    assert moved.status_code == 200
    assert alice.get(f"/api/v1/files/{OUT}/m1.txt").status_code == 404
    assert alice.get(f"/api/v1/files/{OUT}/m2.txt").content == b"moving"
    assert alice.delete(f"/api/v1/files/{OUT}/m2.txt").status_code == 204
    assert alice.get(f"/api/v1/files/{OUT}/m2.txt").status_code == 404
    assert alice.delete(f"/api/v1/files/{OUT}/m2.txt").status_code == 404


def test_a_guarded_move_never_replaces_a_destination_it_did_not_see(alice: httpx.Client) -> None:
    alice.put(f"/api/v1/files/{OUT}/g1.txt", content=b"mine")
    theirs = alice.put(f"/api/v1/files/{OUT}/g2.txt", content=b"theirs").json()["version"]
    pair = {"src": f"{OUT}/g1.txt", "dst": f"{OUT}/g2.txt"}
    assert alice.post("/api/v1/move", json={**pair, "dst_if_absent": True}).status_code == 412
    assert alice.post("/api/v1/move", json={**pair, "dst_if_match": theirs - 1}).status_code == 412
    assert alice.get(f"/api/v1/files/{OUT}/g1.txt").content == b"mine"
    assert alice.get(f"/api/v1/files/{OUT}/g2.txt").content == b"theirs"
    assert alice.post("/api/v1/move", json={**pair, "dst_if_match": theirs}).status_code == 200
    assert alice.get(f"/api/v1/files/{OUT}/g2.txt").content == b"mine"


def test_move_across_top_level_folders_is_refused(alice: httpx.Client) -> None:
    alice.put(f"/api/v1/files/{OUT}/x.txt", content=b"x")
    answer = alice.post("/api/v1/move", json={"src": f"{OUT}/x.txt", "dst": f"datasites/{A}/x.txt"})
    assert answer.status_code == 400
    assert alice.get(f"/api/v1/files/{OUT}/x.txt").content == b"x"


def test_copy_makes_an_independent_file(alice: httpx.Client) -> None:
    alice.put(f"/api/v1/files/{OUT}/c1.txt", content=b"shared")
    assert (
        alice.post(
            "/api/v1/copy", json={"src": f"{OUT}/c1.txt", "dst": f"{OUT}/c2.txt"}
        ).status_code
        == 200
    )
    alice.delete(f"/api/v1/files/{OUT}/c1.txt")
    assert alice.get(f"/api/v1/files/{OUT}/c2.txt").content == b"shared"


def test_list_under_a_prefix(alice: httpx.Client) -> None:
    for name in ("l/a.txt", "l/sub/b.txt", "lx/c.txt"):
        alice.put(f"/api/v1/files/{OUT}/{name}", content=b"x")
    files = alice.get("/api/v1/list", params={"prefix": f"{OUT}/l"}).json()["files"]
    assert [f["path"] for f in files] == [f"{OUT}/l/a.txt", f"{OUT}/l/sub/b.txt"]


def test_list_comes_in_pages_that_hide_what_the_caller_may_not_read(
    hub: HubProcess, alice: httpx.Client
) -> None:
    private = f"datasites/{A}/pages"
    for n in range(5):
        alice.put(f"/api/v1/files/{private}/f{n}.txt", content=b"x")
    bob = client_for(hub.url, B)
    alice.put(f"/api/v1/files/{private}/syft.pub.yaml", content=b"rules:\n  - pattern: f1.txt\n"
              b"    access: {read: [bob@x.org]}\n  - pattern: f3.txt\n"
              b"    access: {read: [bob@x.org]}\n")  # fmt: skip

    def pages(client: httpx.Client) -> list[list[str]]:
        found, params = [], {"prefix": private, "limit": "2"}
        while True:
            page = client.get("/api/v1/list", params=params).json()
            found.append([f["path"].rsplit("/", 1)[1] for f in page["files"]])
            if page["next"] is None:
                return found
            params["after"] = page["next"]

    assert pages(alice) == [
        ["f0.txt", "f1.txt"],
        ["f2.txt", "f3.txt"],
        ["f4.txt", "syft.pub.yaml"],
        [],
    ]
    assert pages(bob) == [["f1.txt"], ["f3.txt"], [], []]
    assert alice.get("/api/v1/list", params={"limit": "0"}).status_code == 422


def test_declared_digest_mismatch_is_refused_and_stores_nothing(
    hub: HubProcess, alice: httpx.Client
) -> None:
    path = f"/api/v1/files/{OUT}/digest.txt"
    answer = alice.put(path, content=b"hello", headers={"X-Content-SHA256": "0" * 64})
    assert answer.status_code == 400
    assert alice.get(path).status_code == 404
    assert list((hub.data / "blobs" / "tmp").iterdir()) == []


@pytest.mark.parametrize("declared", [100_000, 3_000_000])  # read whole / streamed
def test_truncated_upload_leaves_nothing_behind(
    hub: HubProcess, alice: httpx.Client, declared: int
) -> None:
    path = f"{OUT}/cut{declared}.bin"
    token = alice.headers["authorization"]
    with socket.create_connection(("127.0.0.1", hub.port)) as raw:
        raw.sendall(
            f"PUT /api/v1/files/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode()
            + b"x" * 70_000
        )
    head = alice.get("/healthz").json()["head"]
    wait_until(lambda: not list((hub.data / "blobs" / "tmp").iterdir()), "the temp blob to go")
    assert alice.get(f"/api/v1/files/{path}").status_code == 404
    assert alice.get("/healthz").json()["head"] == head


@pytest.mark.parametrize(
    "path",
    [
        f"{OUT}/a%00b.txt",
        f"{OUT}/tab%09.txt",
        f"{OUT}/../x.txt",
        f"{OUT}/%2e%2e/x.txt",
        f"{OUT}//x.txt",
        "elsewhere/x.txt",
        "x.txt",
        "datasites/not-an-email/x.txt",
    ],
)
def test_bad_paths_get_400_and_store_nothing(
    hub: HubProcess, alice: httpx.Client, path: str
) -> None:
    head = alice.get("/healthz").json()["head"]
    token = alice.headers["authorization"]
    assert raw_status(hub.port, "PUT", f"/api/v1/files/{path}", token, b"x") == 400
    assert raw_status(hub.port, "GET", f"/api/v1/files/{path}", token) == 400
    assert alice.get("/healthz").json()["head"] == head


def test_oversized_headers_are_refused_and_store_nothing(
    hub: HubProcess, alice: httpx.Client
) -> None:
    head = alice.get("/healthz").json()["head"]
    answer = alice.put(
        f"/api/v1/files/{OUT}/huge-header.txt", content=b"x", headers={"X-Pad": "p" * 100_000}
    )
    assert answer.status_code in (400, 431)
    assert alice.get(f"/api/v1/files/{OUT}/huge-header.txt").status_code == 404
    assert alice.get("/healthz").json()["head"] == head


def test_writer_is_the_token_identity_not_a_header(alice: httpx.Client) -> None:
    info = alice.put(
        f"/api/v1/files/{OUT}/who.txt", content=b"x",
        headers={"X-Fedbox-Writer": B, "X-Fedbox-Sender": B},
    ).json()  # fmt: skip
    assert info["writer"] == A


def test_head_reports_metadata(alice: httpx.Client) -> None:
    info = alice.put(f"/api/v1/files/{OUT}/h.txt", content=b"12345").json()
    head = alice.head(f"/api/v1/files/{OUT}/h.txt")
    assert head.headers["content-length"] == "5"
    assert head.headers["x-fedbox-sha256"] == info["sha256"]


def test_healthz_and_metrics(hub: HubProcess, alice: httpx.Client) -> None:
    alice.get(f"/api/v1/files/{OUT}/h.txt")
    text = httpx.get(f"{hub.url}/metrics").text
    assert 'fedbox_hub_requests_total{method="GET",route="/api/v1/files/{path:path}"' in text
    assert "fedbox_hub_change_log_head " in text
    assert "fedbox_hub_blob_bytes " in text


def test_blobs_are_local_files(hub: HubProcess) -> None:
    assert (hub.data / "hub.db").exists()
    assert Path(hub.data / "blobs").is_dir()


def test_openapi_documents_the_api(hub: HubProcess) -> None:
    paths = httpx.get(f"{hub.url}/openapi.json").json()["paths"]
    for path in ("/api/v1/files/{path}", "/api/v1/list", "/api/v1/changes", "/api/v1/uploads"):
        assert path in paths, sorted(paths)


def test_db_flag_puts_the_metadata_where_it_says(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.db"
    server = HubProcess(tmp_path / "data", "--db", f"sqlite:///{other}")
    try:
        with client_for(server.url, A) as client:
            client.put(f"/api/v1/files/{OUT}/f.txt", content=b"x").raise_for_status()
    finally:
        server.stop()
    assert other.exists()
    assert not (tmp_path / "data" / "hub.db").exists()
