"""What the owner's bridge lets through, decided before the application runs: the
allowlist (403), the per-sender rate (429), the concurrency cap, expiry (419), and a
backlog answered when the bridge starts after the calls (issue 17, tests 2 and 3)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
import service
from conftest import APP, CALLER, OWNER, until

import fedbox
from fedbox.bridge import Allowlist, AllowRule, Transport, parse_rate, serve
from fedbox.rpc import Box, Future


def test_a_method_or_path_not_allowed_is_403_and_never_reaches_the_application(
    owner: Box, client: httpx.Client
) -> None:
    with serve(owner, APP, asgi_app=service.app, allow=["GET /users/*/items/*", "GET,POST /echo"]):
        assert client.get("/users/1/items/a").status_code == 200
        assert client.post("/echo", json=1).status_code == 200
        before = dict(service.calls)
        refused = [
            client.delete("/users/1/items/a"),  # method
            client.get("/whoami"),  # path
            client.get("/users/1/items/a/b"),  # * is one segment
            client.get("/users/1/../../whoami"),  # dot segments never pass
            client.get("/users/1/items/%2e%2e/whoami"),  # ... encoded either
            client.put("/echo", json=1),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused)
        assert refused[0].json() == {
            "detail": "DELETE /users/1/items/a is not allowed through this bridge"
        }
        assert dict(service.calls) == before


def test_the_rate_limit_is_per_sender_and_answers_429(
    root: Path, owner: Box, client: httpx.Client
) -> None:
    with serve(owner, APP, asgi_app=service.app, rate="2/min"):
        assert [client.get("/whoami").status_code for _ in range(2)] == [200, 200]
        limited = client.get("/whoami")
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) > 0
        assert service.calls["/whoami"] == 2
        with fedbox.connect(root, "other@example.org") as other:
            transport = Transport(other, OWNER, APP)
            with httpx.Client(transport=transport, base_url="http://svc", timeout=60) as c:
                assert c.get("/whoami").json()["sender"] == "other@example.org"


def test_no_more_than_max_concurrent_requests_run_in_the_application(
    owner: Box, caller: Box, client: httpx.Client
) -> None:
    results: list[int] = []

    def call() -> None:
        results.append(client.get("/gate").status_code)

    with serve(owner, APP, asgi_app=service.app, max_concurrent=1):
        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        # all three requests are claimed: their handlers are running, waiting for a slot
        until(lambda: len(owner.audit.records(app=APP)) == 3, what="three requests claimed")
        until(lambda: service.inside["now"] == 1, what="one request inside")
        assert service.inside["most"] == 1
        service.gate.set()
        for t in threads:
            t.join(60)
    assert results == [200, 200, 200]
    assert service.inside["most"] == 1


def test_an_expired_request_is_never_run(owner: Box, caller: Box, client: httpx.Client) -> None:
    with pytest.raises(httpx.ReadTimeout):
        client.get("/whoami", timeout=0.5)  # no bridge is running
    [record] = caller.futures.pending(APP)
    with serve(owner, APP, asgi_app=service.app):
        response = Future(caller, record).wait(30)
    assert response.status == 419
    assert not service.calls


def test_the_backlog_is_answered_when_the_bridge_starts_after_the_calls(
    owner: Box, caller: Box, client: httpx.Client
) -> None:
    results: dict[int, httpx.Response] = {}

    def call(i: int) -> None:
        results[i] = client.get(f"/users/{i}/items/x")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    until(lambda: len(caller.futures.pending(APP)) == 3, what="three requests sent")
    assert not service.calls
    with serve(owner, APP, asgi_app=service.app):
        for t in threads:
            t.join(60)
    assert {i: r.json()["user_id"] for i, r in results.items()} == {0: 0, 1: 1, 2: 2}


@pytest.mark.parametrize(
    "rule",
    ["", "GET", "GET api/*", "G3T /x", "GET /a/../b", "GET /a//b", "GET /[z-a]"],
)
def test_a_bad_allow_rule_is_refused_with_the_reason(rule: str) -> None:
    with pytest.raises(ValueError):
        AllowRule.parse(rule)


@pytest.mark.parametrize("rate", ["", "5", "0/min", "-1/s", "x/min", "5/fortnight", "5/"])
def test_a_bad_rate_is_refused_with_the_form_it_should_take(rate: str) -> None:
    with pytest.raises(ValueError, match="like 60/min"):
        parse_rate(rate)


def test_rules_match_methods_and_globs() -> None:
    rules = Allowlist(["GET /api/*", "POST,PUT /items/**", "* /"])
    assert rules.allows("GET", "/api/x")
    assert rules.allows("GET", "/api/x/")  # a trailing slash
    assert not rules.allows("GET", "/api/x/y")
    assert rules.allows("PUT", "/items/a/b/c")
    assert not rules.allows("GET", "/items/a")
    assert rules.allows("DELETE", "/")
    assert not Allowlist(None).allows("GET", "/a/./b")
    assert Allowlist(None).allows("PATCH", "/anything/at/all")


def test_serve_needs_exactly_one_upstream(owner: Box) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        serve(owner, APP)
    with pytest.raises(ValueError, match="exactly one"):
        serve(owner, APP, asgi_app=service.app, proxy_url="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="proxy URL"):
        serve(owner, APP, proxy_url="ftp://x")
    with pytest.raises(ValueError, match="max_concurrent"):
        serve(owner, APP, asgi_app=service.app, max_concurrent=0)


def test_a_request_body_damaged_past_what_the_application_read_is_refused_400(
    root: Path, owner: Box, caller: Box, client: httpx.Client
) -> None:
    """The application answers without reading the body; the rest is read before the
    message file closes, found damaged, and the request answered 400 and quarantined.
    The slot it held is free again (max_concurrent=1)."""
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.request("GET", "/whoami", content=b"z" * (4 << 20))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=call)
    waiting.start()
    outbox = root / f"syft_outbox_inbox_{CALLER}_to_{OWNER}" / APP / "rpc" / "http"
    until(lambda: list(outbox.glob("*.request")), what="the request file")  # renamed in whole
    [request_file] = outbox.glob("*.request")
    with open(request_file, "r+b") as f:  # a flipped byte in the last encrypted segment
        f.seek(-100, 2)
        byte = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([byte[0] ^ 1]))
    with serve(owner, APP, asgi_app=service.app, max_concurrent=1):
        waiting.join(60)
        assert client.get("/whoami").status_code == 200  # the slot was given back
    [error] = outcome
    assert isinstance(error, httpx.RemoteProtocolError)
    assert "400" in str(error)
    assert not request_file.exists()  # quarantined
    assert service.calls["/whoami"] == 2  # the damage was found after the application ran
