"""A participant in its own OS process, driven by the RPC tests.

Usage: ``python peer.py serve ROOT EMAIL APP`` serves until stdin closes;
``python peer.py send ROOT EMAIL APP TO ENDPOINT COUNT SIZE`` writes requests and prints
their ids as JSON, then exits without waiting; ``python peer.py wait ROOT EMAIL APP IDS``
re-attaches to those ids and prints the responses as JSON; ``call`` sends and waits.
Any command takes ``--encrypt`` (anywhere after the command name) to connect with
end-to-end encryption on. ``serve`` registers ``block`` with ``rerun=True`` when
``$PEER_RERUN`` is 1. The ``block`` handler notes each call in ``ROOT/../ran`` and then waits
until ``ROOT/../release`` exists (so a test can kill the process while it runs).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import fedbox

ENCRYPT = False
RERUN = os.environ.get("PEER_RERUN") == "1"


def _connect(root: str, email: str) -> fedbox.Box:
    return fedbox.connect(root, email, encrypt=ENCRYPT)


def serve(root: str, email: str, app_name: str) -> None:
    box = _connect(root, email)
    app = box.app(app_name)
    calls = {"n": 0}
    lock = threading.Lock()

    @app.on_request("echo")
    def echo(req: fedbox.Request) -> bytes:
        with lock:
            calls["n"] += 1
        return req.body

    @app.on_request("whoami")
    def whoami(req: fedbox.Request) -> fedbox.Response:
        return fedbox.Response(
            body=f"{req.sender}->{req.recipient}".encode(), headers={"pid": str(os.getpid())}
        )

    @app.on_request("block", rerun=RERUN)
    def block(req: fedbox.Request) -> bytes:
        with open(Path(root).parent / "ran", "a") as f:
            f.write(f"{os.getpid()} {req.id}\n")
        while not (Path(root).parent / "release").exists():
            time.sleep(0.02)
        return req.body

    @app.on_request("boom")
    def boom(req: fedbox.Request) -> bytes:
        raise ValueError("deliberate failure in handler")

    app.start()
    print("ready", flush=True)
    sys.stdin.read()
    app.stop()
    print(json.dumps({"handled": calls["n"]}), flush=True)
    box.close()


def send(
    root: str, email: str, app_name: str, to: str, endpoint: str, count: str, size: str
) -> None:
    with _connect(root, email) as box:
        app = box.app(app_name)
        body = os.urandom(int(size))
        ids = [app.send(to, endpoint, body).id for _ in range(int(count))]
    print(json.dumps(ids), flush=True)


def _result(resp: fedbox.Response) -> dict:
    return {"id": resp.id, "status": resp.status, "body": resp.body.hex(), "sender": resp.sender}


def wait(root: str, email: str, app_name: str, ids: str) -> None:
    with _connect(root, email) as box:
        app = box.app(app_name)
        out = [_result(app.future(i).wait(timeout=60)) for i in json.loads(ids)]
    print(json.dumps(out), flush=True)


def call(
    root: str, email: str, app_name: str, to: str, endpoint: str, count: str, size: str
) -> None:
    with _connect(root, email) as box:
        app = box.app(app_name)
        bodies = [os.urandom(int(size)) for _ in range(int(count))]
        futures = [app.send(to, endpoint, b) for b in bodies]
        _, pending = box.wait(futures, timeout=120)
        out = []
        for fut, body in zip(futures, bodies, strict=True):
            if fut in pending:
                out.append({"id": fut.id, "status": None})
                continue
            resp = fut.result()
            out.append({**_result(resp), "match": resp.body == body})
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    commands = {"serve": serve, "send": send, "wait": wait, "call": call}
    args = sys.argv[2:]
    if "--encrypt" in args:
        args.remove("--encrypt")
        ENCRYPT = True
    commands[sys.argv[1]](*args)
