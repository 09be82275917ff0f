"""A proxied service that closes a kept-alive connection as the bridge reuses it (uvicorn
drops idle ones after 5 s) costs a bodiless request nothing: it goes again on a fresh
connection instead of becoming a 502."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator

import pytest

from fedbox.bridge.upstream import ProxyUpstream, RequestBody

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
MISSING = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
    return data


def _serve(listener: socket.socket) -> None:
    """First connection: answer one request, then close when the second arrives (the
    race). Second connection: answer 404."""
    first, _ = listener.accept()
    with first:
        _read_request(first)
        first.sendall(OK)
        _read_request(first)
    second, _ = listener.accept()
    with second:
        _read_request(second)
        second.sendall(MISSING)


@pytest.fixture
def service() -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_serve, args=(listener,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    thread.join(timeout=10)
    listener.close()


def test_a_request_on_a_connection_closed_under_it_goes_again(service: str) -> None:
    upstream = ProxyUpstream(service)
    try:
        first = upstream.open("GET", "/", [("host", "x")], RequestBody(io.BytesIO(), 0), 10)
        assert first.status == 200 and first.whole(100) == b"ok"
        first.close()
        again = upstream.open("GET", "/nowhere", [("host", "x")], RequestBody(io.BytesIO(), 0), 10)
        assert again.status == 404
        again.close()
    finally:
        upstream.close()
