"""A rule file written straight to the hub (not through the owner's daemon) reaches the
mirrors whose view it changed: files it opens arrive, copies of files it closes go, a
reader offline meanwhile catches up, a selection still applies, and across two hub
processes over PostgreSQL a rule written at one reaches a daemon following the other."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import A, B
from hub_cluster import HubCluster
from hub_process import HubProcess, client_for
from sync_process import SyncProcess, log_in
from waiting import wait_until

RULES = f"datasites/{A}/syft.pub.yaml"
SHARED = f"datasites/{A}/shared"
PUBLIC = f"datasites/{A}/public"
BOTH = """
rules:
  - pattern: "shared/**"
    access: {read: ["*"]}
  - pattern: "public/**"
    access: {read: ["*"]}
"""
PUBLIC_ONLY = """
rules:
  - pattern: "public/**"
    access: {read: ["*"]}
"""


def _has(path: Path, data: bytes) -> Callable[[], bool]:
    return lambda: path.is_file() and path.read_bytes() == data


def _put(hub_url: str, path: str, data: bytes | str) -> None:
    answer = client_for(hub_url, A).put(f"/api/v1/files/{path}", content=data)
    assert answer.status_code == 200, answer.text


def test_a_rule_written_to_the_hub_opens_and_closes_files_in_mirrors(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    log_in(hub.url, A), log_in(hub.url, B)
    _put(hub.url, f"{SHARED}/report.txt", b"private until shared")
    _put(hub.url, f"{PUBLIC}/notes.txt", b"public once ruled")
    a = start_sync(hub.url, A, tmp_path / "a")
    b = start_sync(hub.url, B, tmp_path / "b")
    wait_until(lambda: (a.folder / SHARED / "report.txt").is_file() and a.idle(), "alice")
    wait_until(b.idle, "bob to settle")
    assert not (b.folder / SHARED).exists()

    _put(hub.url, RULES, BOTH)
    wait_until(_has(b.folder / SHARED / "report.txt", b"private until shared"), "shared")
    wait_until(_has(b.folder / PUBLIC / "notes.txt", b"public once ruled"), "public")
    wait_until(lambda: a.idle() and b.idle(), "both to settle")
    wait_until(_has(a.folder / RULES, BOTH.encode()), "the rule file at alice's")
    feed = client_for(hub.url, A).get("/api/v1/changes", params={"after": 0}).json()["changes"]
    assert "rules" not in {c["op"] for c in feed}  # the owner's view did not change
    assert "rules" in {
        c["op"] for c in client_for(hub.url, B).get("/api/v1/changes").json()["changes"]
    }

    _put(hub.url, RULES, PUBLIC_ONLY)
    wait_until(lambda: not (b.folder / SHARED / "report.txt").exists(), "the closed copy to go")
    wait_until(b.idle, "bob to settle")
    assert (b.folder / PUBLIC / "notes.txt").read_bytes() == b"public once ruled"
    assert (a.folder / SHARED / "report.txt").is_file()  # the owner's copy stays
    assert client_for(hub.url, A).get(f"/api/v1/files/{SHARED}/report.txt").status_code == 200


def test_a_reader_offline_at_the_rule_change_catches_up(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    log_in(hub.url, B)
    _put(hub.url, f"{PUBLIC}/early.txt", b"readable since the rule")
    b = start_sync(hub.url, B, tmp_path / "b")
    wait_until(b.idle, "bob to settle")
    b.stop()
    _put(hub.url, f"{SHARED}/before.txt", b"written before the rule")
    _put(hub.url, RULES, BOTH)
    b.start()
    wait_until(_has(b.folder / SHARED / "before.txt", b"written before the rule"), "the file")
    wait_until(_has(b.folder / PUBLIC / "early.txt", b"readable since the rule"), "the file")


def test_a_rule_change_respects_the_selection(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    log_in(hub.url, B)
    _put(hub.url, f"{SHARED}/unwanted.txt", b"not selected")
    _put(hub.url, f"{PUBLIC}/wanted.txt", b"selected")
    b = start_sync(hub.url, B, tmp_path / "b", "--only", f"{PUBLIC}/**")
    _put(hub.url, RULES, BOTH)
    wait_until(_has(b.folder / PUBLIC / "wanted.txt", b"selected"), "the selected file")
    wait_until(b.idle, "bob to settle")
    assert not (b.folder / SHARED).exists()
    feed = (
        client_for(hub.url, B)
        .get("/api/v1/changes", params={"after": 0, "only": f"{PUBLIC}/**"})
        .json()["changes"]
    )
    wanted = ("put", f"{PUBLIC}/wanted.txt")  # its own change (the rules read now), then listed
    assert [(c["op"], c["path"]) for c in feed] == [wanted, ("rules", f"datasites/{A}"), wanted]


def test_a_rule_written_at_one_hub_process_reaches_a_daemon_at_the_other(
    make_cluster: Callable[..., HubCluster],
    tmp_path: Path,
    start_sync: Callable[..., SyncProcess],
) -> None:
    cluster = make_cluster()
    first, second = cluster.urls
    log_in(second, B)
    _put(first, f"{SHARED}/report.txt", b"across processes")
    b = start_sync(second, B, tmp_path / "b")
    wait_until(b.idle, "bob to settle")
    assert not (b.folder / SHARED).exists()
    _put(first, RULES, BOTH)
    wait_until(_has(b.folder / SHARED / "report.txt", b"across processes"), "the file")
    _put(first, f"{PUBLIC}/still.txt", b"still readable")
    _put(first, RULES, PUBLIC_ONLY)
    wait_until(_has(b.folder / PUBLIC / "still.txt", b"still readable"), "the public file")
    wait_until(lambda: not (b.folder / SHARED / "report.txt").exists(), "the closed copy to go")
