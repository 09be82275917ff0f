"""The owner and the caller as separate processes: ``fedbox bridge serve`` with an
in-process ASGI app and as a proxy in front of uvicorn, on a folder and on S3 (moto),
encrypted (issue 17: owner side, tests 3 and 5)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from bridge_process import HERE, OwnerProcess
from conftest import APP, CALLER, OWNER, until
from remote_servers import Target, free_port

import fedbox
from fedbox.bridge import Transport


def client_for(box: fedbox.Box) -> httpx.Client:
    return httpx.Client(transport=Transport(box, OWNER, APP), base_url="http://svc", timeout=60)


@pytest.fixture
def uvicorn_service() -> Iterator[str]:
    """The test application behind a real socket, for the proxy."""
    pytest.importorskip("uvicorn")
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "service:app", "--port", str(port)]
    proc = subprocess.Popen([*command, "--app-dir", str(HERE), "--log-level", "warning"])

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        until(listening, 60, "uvicorn to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def test_an_owner_process_serves_an_asgi_app_and_its_backlog(root: Path) -> None:
    with fedbox.connect(root, OWNER):
        pass  # the owner's keys exist and are published, as after any earlier run
    with fedbox.connect(root, CALLER) as caller, client_for(caller) as c:
        answers: list[httpx.Response] = []
        early = threading.Thread(target=lambda: answers.append(c.get("/users/5/items/q")))
        early.start()
        until(lambda: len(caller.futures.pending(APP)) == 1, what="the request sent")
        owner = OwnerProcess(str(root), OWNER, APP, "--asgi", "service:app")
        try:
            early.join(60)
            assert answers[0].json()["user_id"] == 5
            pid = int(c.get("/pid").text)
            assert pid == owner.proc.pid != os.getpid()
            assert c.get("/whoami", headers={"x-fedbox-sender": "x"}).json()["all"] == [CALLER]
            assert c.get("/fail").status_code == 500
        finally:
            assert owner.stop() == 0


def test_a_proxy_in_front_of_a_real_http_service(root: Path, uvicorn_service: str) -> None:
    owner = OwnerProcess(str(root), OWNER, APP, "--proxy", uvicorn_service, "--allow", "* /**")
    try:
        with fedbox.connect(root, CALLER) as caller, client_for(caller) as c:
            assert c.get("/users/3/items/x", params={"q": "é"}).json() == {
                "user_id": 3,
                "item": "x",
                "q": "é",
                "limit": 10,
            }
            got = c.post("/upload", data={"name": "a"}, files={"file": ("f.txt", b"hi")})
            assert got.json() == {"name": "a", "filename": "f.txt", "size": 2, "text": "hi"}
            assert c.get("/whoami", headers={"X-Fedbox-Sender": "x"}).json()["all"] == [CALLER]
            size = 3 * (1 << 20) + 7
            assert len(c.get(f"/download/{size}").content) == size
            assert c.post("/digest", content=iter([b"ab"] * 1000)).json()["size"] == 2000
            assert c.get("/fail").status_code == 500
            assert c.get("/nowhere").status_code == 404
    finally:
        assert owner.stop() == 0


def test_a_proxy_whose_service_is_down_answers_502(root: Path) -> None:
    port = free_port()
    owner = OwnerProcess(str(root), OWNER, APP, "--proxy", f"http://127.0.0.1:{port}")
    try:
        with fedbox.connect(root, CALLER) as caller, client_for(caller) as c:
            r = c.get("/whoami")
            assert r.status_code == 502
            assert "unreachable" in r.json()["detail"]
    finally:
        owner.stop()


def test_over_s3_encrypted(make_target: Callable[[str], Target]) -> None:
    target = make_target("s3")
    env = {"FEDBOX_STORAGE_OPTIONS": json.dumps(target.options)}
    owner = OwnerProcess(target.url, OWNER, APP, "--asgi", "service:app", env=env)
    try:
        caller = fedbox.connect(target.url, CALLER, storage_options=target.options)
        with caller, client_for(caller) as c:
            assert c.get("/whoami").json()["sender"] == CALLER
            size = 2 * (1 << 20) + 1
            assert len(c.get(f"/download/{size}").content) == size
            form = {"file": ("f.txt", b"over s3")}
            assert c.post("/upload", data={"name": "s"}, files=form).json()["text"] == "over s3"
    finally:
        assert owner.stop() == 0


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        ([], "exactly one of --asgi"),
        (["--asgi", "service:app", "--proxy", "http://127.0.0.1:1"], "exactly one of --asgi"),
        (["--asgi", "service"], "must be module:attribute"),
        (["--asgi", "no_such_module:app"], "cannot import"),
        (["--asgi", "service:nothing"], "has no attribute"),
        (["--asgi", "service:CHUNK"], "not an ASGI application"),
        (["--asgi", "service:app", "--allow", "GET api"], "allow rule"),
        (["--asgi", "service:app", "--rate", "fast"], "like 60/min"),
        (["--proxy", "ftp://x"], "proxy URL"),
    ],
)
def test_bad_command_lines_are_refused_with_the_reason(
    root: Path, flags: list[str], error: str
) -> None:
    command = [sys.executable, "-m", "fedbox", "bridge", "serve", "--email", OWNER]
    done = subprocess.run(
        [*command, "--root", str(root), "--app", APP, "--app-dir", str(HERE), *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert error in " ".join(done.stderr.split())


def test_a_request_interrupted_by_kill_9_is_answered_once_not_run_again(root: Path) -> None:
    """HTTP cannot say whether a request is safe to repeat, so one whose owner died while
    the application ran is answered 500 "interrupted" by the next owner process."""
    from fedbox.datasite.workspace import Workspace
    from fedbox.rpc import AuditLog

    owner = OwnerProcess(str(root), OWNER, APP, "--asgi", "service:app")
    outcome: list[BaseException | httpx.Response] = []
    with fedbox.connect(root, CALLER) as caller, client_for(caller) as c:

        def call() -> None:
            try:
                outcome.append(c.get("/gate"))
            except httpx.HTTPError as exc:
                outcome.append(exc)

        waiting = threading.Thread(target=call)
        waiting.start()
        audit = AuditLog(Workspace.for_email(OWNER).audit_db)
        try:
            until(lambda: audit.records(app=APP), 60, "the owner to claim the request")
        finally:
            audit.close()
        owner.proc.kill()  # SIGKILL, inside the application
        owner.proc.wait(30)
        again = OwnerProcess(str(root), OWNER, APP, "--asgi", "service:app")
        try:
            waiting.join(60)
        finally:
            again.stop()
    [error] = outcome
    assert isinstance(error, httpx.RemoteProtocolError)
    assert "500" in str(error)
    assert "interrupted" in str(error)


def test_no_encrypt_serves_plaintext_callers(root: Path) -> None:
    owner = OwnerProcess(str(root), OWNER, APP, "--asgi", "service:app", "--no-encrypt")
    try:
        plain = fedbox.connect(root, CALLER, encrypt=False)
        with plain, client_for(plain) as c:
            assert c.get("/whoami").json()["sender"] == CALLER
        assert not (root / "datasites" / OWNER / "public" / "did.json").exists()
    finally:
        assert owner.stop() == 0
