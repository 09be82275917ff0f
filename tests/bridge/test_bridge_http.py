"""Every call through the bridge returns what the same call returns through
``httpx.ASGITransport`` directly: status, headers, body (issue 17, tests 1)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import service
from conftest import APP, CALLER, OWNER

from fedbox.bridge import AsyncTransport, Bridge, Transport, serve
from fedbox.rpc import Box

CALLS: dict[str, tuple[str, str, Callable[[], dict[str, Any]]]] = {
    "path params and query": ("GET", "/users/7/items/a%20b", lambda: {"params": {"q": "x y"}}),
    "query with a bad type (422)": ("GET", "/users/7/items/a", lambda: {"params": {"limit": "x"}}),
    "path param of a bad type (422)": ("GET", "/users/seven/items/a", dict),
    "no such route (404)": ("GET", "/nowhere", dict),
    "wrong method (405)": ("DELETE", "/whoami", dict),
    "json": ("POST", "/echo", lambda: {"json": {"a": [1, 2], "b": "\u00fc"}}),
    "form upload": (
        "POST",
        "/upload",
        lambda: {"data": {"name": "n1"}, "files": {"file": ("f.txt", b"hello", "text/plain")}},
    ),
    "streamed download": ("GET", f"/download/{3 * service.CHUNK + 5}", dict),
    "streamed upload": ("POST", "/digest", lambda: {"content": iter([b"a" * 70000, b"b" * 5])}),
    "endpoint that raises": ("GET", "/fail", dict),
    "redirect followed": ("GET", "/users/7/items/a/", lambda: {"follow_redirects": True}),
}


def direct(method: str, url: str, options: dict[str, Any]) -> httpx.Response:
    """The same call over httpx's own ASGI transport, with the header the bridge adds set
    by hand; exceptions become 500s as an HTTP server gives them. (ASGITransport is
    async only; a streamed body is joined for it, the application reads the same.)"""
    if "content" in options and not isinstance(options["content"], bytes):
        options["content"] = b"".join(options["content"])

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(service.app, raise_app_exceptions=False)
        headers = {"x-fedbox-sender": CALLER}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://svc", headers=headers
        ) as c:
            return await c.request(method, url, **options)

    return asyncio.run(call())


def same(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code
    assert a.headers.multi_items() == b.headers.multi_items()
    assert a.content == b.content
    assert [r.status_code for r in a.history] == [r.status_code for r in b.history]


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_call_through_the_bridge_is_the_call_made_directly(
    name: str, bridge: Bridge, client: httpx.Client
) -> None:
    method, url, options = CALLS[name]
    expected = direct(method, url, options())
    got = client.request(method, url, **options())
    same(got, expected)


def test_the_sender_header_is_the_authenticated_sender(
    bridge: Bridge, client: httpx.Client
) -> None:
    for forged in ("X-Fedbox-Sender", "x-fedbox-sender", "X-FEDBOX-SENDER"):
        r = client.get("/whoami", headers={forged: "ceo@example.org"})
        assert r.json() == {"sender": CALLER, "all": [CALLER]}


def test_a_streamed_response_is_read_piece_by_piece(bridge: Bridge, client: httpx.Client) -> None:
    size = 5 * service.CHUNK + 3
    with client.stream("GET", f"/download/{size}") as r:
        pieces = list(r.iter_raw())
    assert sum(map(len, pieces)) == size
    assert max(map(len, pieces)) < size  # never handed over whole
    block = bytes(range(256))
    assert b"".join(pieces) == (block * (size // 256 + 1))[:size]


def test_full_duplex_an_application_that_answers_while_it_reads(
    bridge: Bridge, client: httpx.Client
) -> None:
    """The application streams the request body back while reading it (httpx's
    ASGITransport hangs on this one, so there is nothing to compare with)."""
    body = bytes(range(256)) * 40_000  # 10 MB: more than the response queue holds
    r = client.post(
        "/mirror", content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    )
    assert r.status_code == 200
    assert r.content == body


def test_an_application_failing_midway_is_a_protocol_error(
    bridge: Bridge, client: httpx.Client
) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="broke after the first part"):
        client.get("/fail-midway")
    assert client.get("/whoami").status_code == 200  # the bridge carries on


def test_the_async_transport(bridge: Bridge, caller: Box) -> None:
    async def main() -> list[httpx.Response]:
        transport = AsyncTransport(caller, OWNER, APP)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:

            async def upload() -> Any:
                yield b"part one, "
                yield b"part two"

            return await asyncio.gather(
                c.get("/users/1/items/x"),
                c.post("/digest", content=upload()),
                c.get(f"/download/{service.CHUNK + 1}"),
            )

    item, digest, download = asyncio.run(main())
    assert item.json() == {"user_id": 1, "item": "x", "q": None, "limit": 10}
    assert digest.json()["size"] == len(b"part one, part two")
    assert len(download.content) == service.CHUNK + 1


def test_bad_bodies_in_the_request_head_are_answered_400(
    owner: Box, caller: Box, bridge: Bridge
) -> None:
    future = caller.app(APP).send(OWNER, "http", b"GET / HTTP/1.1\r\n\r\n")
    response = future.wait(30)
    assert response.status == 400
    assert "not an HTTP request" in response.text
    head = json.dumps({"method": "GET", "target": "no-slash", "headers": []}).encode()
    future = caller.app(APP).send(
        OWNER, "http", b"FBXHTQ1\n" + len(head).to_bytes(4, "little") + head
    )
    assert "bad HTTP target" in future.wait(30).text
    assert not service.calls


def test_transport_is_usable_as_a_plain_httpx_transport(caller: Box) -> None:
    assert isinstance(Transport(caller, OWNER, APP), httpx.BaseTransport)
    with pytest.raises(ValueError):
        Transport(caller, "not an email", APP)


def test_the_application_lifespan_runs_around_serving(owner: Box) -> None:
    service.lifespan_events.clear()
    bridge = serve(owner, APP, asgi_app=service.app)
    assert service.lifespan_events == ["startup"]
    bridge.stop()
    assert service.lifespan_events == ["startup", "shutdown"]
