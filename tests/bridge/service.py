"""The FastAPI application the bridge tests call: routing with path parameters, a query,
a dependency, JSON, a form upload, streamed bodies both ways and an endpoint that raises.
It counts the requests that reach it, so a test can tell that one never did.

Run by the tests in-process (``service.app``), by ``fedbox bridge serve --asgi
service:app`` in an owner process, and by uvicorn for the proxy tests.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Form, Header, Request, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse

from fedbox.testing.payload import repeated_block

calls: Counter[str] = Counter()
"""Requests that reached each route, by path template."""
lifespan_events: list[str] = []


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    lifespan_events.append("startup")
    yield
    lifespan_events.append("shutdown")


app = FastAPI(lifespan=lifespan)

CHUNK = 1 << 20
gate = threading.Event()
"""``/gate`` requests wait for this."""
inside = Counter[str]()
"""``now``: requests inside ``/gate``; ``most``: the largest ``now`` seen."""
_inside_lock = threading.Lock()


def counted(request: Request) -> str:
    calls[request.scope["route"].path] += 1
    return request.headers.get("x-fedbox-sender", "")


Sender = Annotated[str, Depends(counted)]


@app.get("/users/{user_id}/items/{item}")
def item(user_id: int, item: str, sender: Sender, q: str | None = None, limit: int = 10) -> dict:
    return {"user_id": user_id, "item": item, "q": q, "limit": limit}


@app.post("/echo")
async def echo(request: Request, sender: Sender) -> dict:
    return {"json": await request.json(), "sender": sender}


@app.get("/whoami")
def whoami(sender: Sender, x_fedbox_sender: Annotated[list[str] | None, Header()] = None) -> dict:
    return {"sender": sender, "all": x_fedbox_sender}


@app.post("/upload")
async def upload(sender: Sender, name: Annotated[str, Form()], file: UploadFile) -> dict:
    data = await file.read()
    return {"name": name, "filename": file.filename, "size": len(data), "text": data.decode()}


@app.get("/download/{size}")
def download(size: int, sender: Sender) -> StreamingResponse:
    """``size`` bytes of a repeating pattern, generated chunk by chunk."""
    chunks = repeated_block(bytes(range(256)) * (CHUNK // 256), size)
    return StreamingResponse(chunks, media_type="application/octet-stream")


@app.post("/digest")
async def digest(request: Request, sender: Sender) -> dict:
    """The size and SHA-256 of a streamed upload, read chunk by chunk."""
    h = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        h.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": h.hexdigest()}


@app.post("/mirror")
async def mirror(request: Request, sender: Sender) -> StreamingResponse:
    """Streams the request body back while reading it (full duplex)."""

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            yield chunk

    return StreamingResponse(body(), media_type="application/octet-stream")


@app.get("/fail")
def fail(sender: Sender) -> dict:
    raise RuntimeError("this endpoint always fails")


@app.get("/fail-midway")
def fail_midway(sender: Sender) -> StreamingResponse:
    def chunks() -> bytes:
        yield b"first part;"
        raise RuntimeError("broke after the first part")

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/gate")
def gated(sender: Sender) -> dict:
    with _inside_lock:
        inside["now"] += 1
        inside["most"] = max(inside["most"], inside["now"])
    try:
        gate.wait(60)
    finally:
        with _inside_lock:
            inside["now"] -= 1
    return {"passed": gate.is_set()}


@app.get("/pid")
def pid(sender: Sender) -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()))
