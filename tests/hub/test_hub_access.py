"""The access table over HTTP: who may read and write what, and what a refusal reveals.

Unreadable answers exactly like missing (404, same body), readable-but-not-writable is
403, a path outside the namespace or with tricks is 400; the feed follows the same rules.
"""

from __future__ import annotations

import httpx
import pytest
from hub_process import BACKENDS, HubProcess, client_for, raw_status

A, B, C = "alice@x.org", "bob@x.org", "carol@x.org"
CO, COM = "bob@x.co", "bob@x.com"  # the prefix trick: neither owns the other's datasite
USERS = (A, B, C, CO, COM)
SITE = f"datasites/{A}"
AB = f"syft_outbox_inbox_{A}_to_{B}/app/rpc/e"
CO_OUT = f"syft_outbox_inbox_{CO}_to_{A}/app/rpc/e"
REQ_AB = f"{AB}/11111111-1111-4111-8111-111111111111.request"
REQ_CO = f"{CO_OUT}/22222222-2222-4222-8222-222222222222.request"

RULES = {
    f"{SITE}/syft.pub.yaml": """
rules:
  - pattern: "public/**"
    access: {read: ["*"]}
  - pattern: "shared/**"
    access: {read: [bob@x.org], write: [carol@x.org]}
  - pattern: "inbox/{useremail}/**"
    access: {write: [USER]}
  - pattern: "**"
    access: {read: []}
""",
    f"{SITE}/term/syft.pub.yaml": """
terminal: true
rules:
  - pattern: "**"
    access: {read: [bob@x.org]}
""",
    f"{SITE}/term/inner/syft.pub.yaml": """
rules:
  - pattern: "**"
    access: {read: ["*"], write: ["*"]}
""",
}
FILES = {
    A: [
        f"{SITE}/public/data.csv",
        f"{SITE}/private/secret.txt",
        f"{SITE}/shared/notes.txt",
        f"{SITE}/term/inner/x.txt",
        REQ_AB,
    ],
    CO: [f"datasites/{CO}/private.txt", REQ_CO],
}

OWN = {A}
READ, WRITE = "GET", "PUT"


def _row(path: str, read: dict[str, int], write: dict[str, int]) -> list[tuple[str, str, str, int]]:
    return [(u, READ, path, read[u]) for u in read] + [(u, WRITE, path, write[u]) for u in write]


def _all(status: int, **overrides: int) -> dict[str, int]:
    named = {A: "A", B: "B", C: "C", CO: "CO", COM: "COM"}
    return {u: overrides.get(named[u], status) for u in USERS}


# Reads are of files written before the table runs (or of a path nothing writes) and
# writes only replace them, so the cases hold in any order.
CASES: list[tuple[str, str, str, int]] = [
    *_row(f"{SITE}/public/data.csv", _all(200), _all(403, A=200)),
    *_row(f"{SITE}/private/secret.txt", _all(404, A=200), _all(404, A=200)),
    *_row(f"{SITE}/private/missing.txt", _all(404), {}),
    *_row(f"{SITE}/private/new.txt", {}, _all(404, A=200)),
    *_row(
        f"{SITE}/shared/notes.txt", _all(404, A=200, B=200, C=200), _all(404, A=200, B=403, C=200)
    ),
    # writing a rule file needs admin: carol may write shared/ but not its rules
    *_row(f"{SITE}/shared/syft.pub.yaml", {}, _all(404, A=200, B=403, C=403)),
    *_row(f"{SITE}/syft.pub.yaml", _all(404, A=200), {}),
    # terminal: the deeper file granting everyone is ignored
    *_row(f"{SITE}/term/inner/x.txt", _all(404, A=200, B=200), _all(404, A=200, B=403)),
    # USER with {useremail}: each writes only their own inbox folder
    *_row(f"{SITE}/inbox/{C}/m.txt", {}, _all(404, A=200, C=200)),
    *_row(f"{SITE}/inbox/{B}/m.txt", {}, _all(404, A=200, B=200)),
    # the owner is the exact first component, never a prefix
    *_row(f"datasites/{CO}/private.txt", _all(404, CO=200), _all(404, CO=200)),
    *_row(f"datasites/{COM}/mine.txt", {}, _all(404, COM=200)),
    # outboxes: only A writes A_to_B, only A and B read it; C forging A's outbox is refused
    *_row(REQ_AB, _all(404, A=200, B=200), _all(404, A=200, B=403)),
    *_row(REQ_CO, _all(404, CO=200, A=200), _all(404, CO=200, A=403)),
    *_row(f"syft_outbox_inbox_{COM}_to_{A}/app/x", {}, _all(404, COM=200, A=403)),
]  # fmt: skip

TRICKS = [
    f"{SITE}/public/../private/secret.txt",
    f"{SITE}/public/%2e%2e/private/secret.txt",
    f"{SITE}/public/%2E%2E/private/secret.txt",
    f"{SITE}/public/.%2e/private/secret.txt",
    f"{SITE}/public/%2e%2e%2fprivate/secret.txt",
    f"/{SITE}/private/secret.txt",
    f"%2f{SITE}/private/secret.txt",
    f"{SITE}//private/secret.txt",
    f"{SITE}/./private/secret.txt",
    f"{SITE}/private/secret.txt%00",
    f"{SITE}/private/%0asecret.txt",
    f"{SITE}/private\\secret.txt",
    "etc/passwd",
    "datasites",
    f"datasites/{A}%2f..%2f{B}/x",
    f"syft_outbox_inbox_{A}_to_/x",
]


@pytest.fixture(scope="module", params=BACKENDS)
def hub_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def clients(hub: HubProcess) -> dict[str, httpx.Client]:
    made = {u: client_for(hub.url, u) for u in USERS}
    for path, text in RULES.items():
        made[A].put(f"/api/v1/files/{path}", content=text.encode()).raise_for_status()
    for user, paths in FILES.items():
        for path in paths:
            made[user].put(f"/api/v1/files/{path}", content=b"content").raise_for_status()
    return made


def test_the_table_has_at_least_100_cases() -> None:
    assert len(CASES) + 2 * len(TRICKS) >= 100


@pytest.mark.parametrize(("user", "method", "path", "status"), CASES, ids=lambda v: str(v))
def test_access_case(
    clients: dict[str, httpx.Client], user: str, method: str, path: str, status: int
) -> None:
    client = clients[user]
    if method == READ:
        answer = client.get(f"/api/v1/files/{path}")
    else:
        answer = client.put(f"/api/v1/files/{path}", content=b"rules: []\n")
    assert answer.status_code == status, answer.text
    if status == 404:
        assert answer.json() == {"detail": "not found"}


@pytest.mark.parametrize("path", TRICKS)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_path_tricks_are_refused_with_400(
    hub: HubProcess, clients: dict[str, httpx.Client], path: str, method: str
) -> None:
    token = clients[C].headers["authorization"]
    head = clients[C].get("/healthz").json()["head"]
    status = raw_status(hub.port, method, f"/api/v1/files/{path}", token, b"x")
    # 400 from the hub's path check; 404 only where no route matches at all (a newline
    # never matches a route): either way nothing was stored.
    assert status == (404 if "%0a" in path else 400)
    assert clients[C].get("/healthz").json()["head"] == head


def test_hidden_and_missing_look_the_same(clients: dict[str, httpx.Client]) -> None:
    hidden = clients[C].get(f"/api/v1/files/{SITE}/private/secret.txt")
    missing = clients[C].get(f"/api/v1/files/{SITE}/private/nothing.txt")
    assert (hidden.status_code, hidden.content) == (missing.status_code, missing.content)
    hidden_head = clients[C].head(f"/api/v1/files/{SITE}/private/secret.txt")
    assert hidden_head.status_code == 404
    delete = clients[C].delete(f"/api/v1/files/{SITE}/private/secret.txt")
    assert (delete.status_code, delete.content) == (missing.status_code, missing.content)


def test_list_shows_only_what_the_caller_may_read(clients: dict[str, httpx.Client]) -> None:
    listed = {f["path"] for f in clients[C].get("/api/v1/list").json()["files"]}
    assert f"{SITE}/public/data.csv" in listed
    assert f"{SITE}/shared/notes.txt" in listed
    assert not any("/private/" in p or p.startswith("syft_outbox") for p in listed), listed
    bobs = {
        f["path"] for f in clients[B].get("/api/v1/list", params={"prefix": AB}).json()["files"]
    }
    assert bobs == {REQ_AB}


def test_move_and_copy_need_the_same_rights(clients: dict[str, httpx.Client]) -> None:
    secret = f"{SITE}/private/secret.txt"
    moved = clients[C].post("/api/v1/move", json={"src": secret, "dst": f"{SITE}/shared/s.txt"})
    assert moved.status_code == 404
    copied = clients[B].post("/api/v1/copy", json={"src": secret, "dst": f"{SITE}/shared/s.txt"})
    assert copied.status_code == 404
    stolen = clients[C].post(
        "/api/v1/copy", json={"src": f"{SITE}/shared/notes.txt", "dst": f"{SITE}/public/n.txt"}
    )
    assert stolen.status_code == 403
    assert clients[A].get(f"/api/v1/files/{secret}").status_code == 200


def test_feed_shows_only_what_the_caller_may_read(clients: dict[str, httpx.Client]) -> None:
    seen = {
        c["path"] for c in clients[C].get("/api/v1/changes", params={"after": 0}).json()["changes"]
    }
    assert f"{SITE}/public/data.csv" in seen
    assert not any("private" in p or p.startswith("syft_outbox_inbox_alice") for p in seen)


def test_the_feed_shows_each_user_exactly_the_new_files_they_may_read(
    clients: dict[str, httpx.Client],
) -> None:
    """Fresh paths, so the feed decides each one before any read of it: its answer must
    be the one a GET gives afterwards (the feed only asks "may read", GET the verdict)."""
    fresh = {
        A: [
            f"{SITE}/public/fresh.csv", f"{SITE}/private/fresh.txt", f"{SITE}/shared/fresh.txt",
            f"{SITE}/term/fresh.txt", f"{SITE}/term/inner/fresh.txt",
            f"{AB}/33333333-3333-4333-8333-333333333333.request",
        ],
        CO: [f"datasites/{CO}/fresh.txt", f"{CO_OUT}/44444444-4444-4444-8444-444444444444.request"],
    }  # fmt: skip
    head = clients[A].get("/healthz").json()["head"]
    for user, paths in fresh.items():
        for path in paths:
            clients[user].put(f"/api/v1/files/{path}", content=b"fresh").raise_for_status()
    written = {path for paths in fresh.values() for path in paths}
    shown: dict[str, set[str]] = {}
    for user in USERS:
        feed = clients[user].get("/api/v1/changes", params={"after": head}).json()["changes"]
        seen = {c["path"] for c in feed}
        readable = {
            p for p in written if clients[user].get(f"/api/v1/files/{p}").status_code == 200
        }
        assert seen == readable, user
        shown[user] = seen
    assert shown[A] == written - {f"datasites/{CO}/fresh.txt"}
    assert shown[B] == {
        f"{SITE}/public/fresh.csv", f"{SITE}/shared/fresh.txt", f"{SITE}/term/fresh.txt",
        f"{SITE}/term/inner/fresh.txt", fresh[A][-1],
    }  # fmt: skip


def test_changing_a_rule_file_takes_effect_on_the_next_request(
    clients: dict[str, httpx.Client],
) -> None:
    path = f"{SITE}/open/doc.txt"
    clients[A].put(f"/api/v1/files/{path}", content=b"doc").raise_for_status()
    assert clients[C].get(f"/api/v1/files/{path}").status_code == 404
    rules = f'rules:\n  - pattern: "**"\n    access: {{read: ["{C}"]}}\n'
    clients[A].put(f"/api/v1/files/{SITE}/open/syft.pub.yaml", content=rules.encode())
    assert clients[C].get(f"/api/v1/files/{path}").content == b"doc"
    clients[A].delete(f"/api/v1/files/{SITE}/open/syft.pub.yaml")
    assert clients[C].get(f"/api/v1/files/{path}").status_code == 404


def test_an_invalid_rule_file_is_refused_and_changes_nothing(
    clients: dict[str, httpx.Client],
) -> None:
    bad = clients[A].put(f"/api/v1/files/{SITE}/bad/syft.pub.yaml", content=b"rules: [oops")
    assert bad.status_code == 400
    assert "syft.pub.yaml" in bad.json()["detail"]
    assert clients[A].get(f"/api/v1/files/{SITE}/bad/syft.pub.yaml").status_code == 404


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer garbage", "Basic YTpi", "Bearer " + "x" * 5000,
     "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZUB4Lm9yZyJ9."],
)  # fmt: skip
def test_missing_or_bad_tokens_get_401(hub: HubProcess, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    answer = httpx.get(f"{hub.url}/api/v1/files/{SITE}/public/data.csv", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
