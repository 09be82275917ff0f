"""Real servers on 127.0.0.1 for remote-store tests and benchmarks: S3 (moto), WebDAV
(wsgidav on cheroot), SFTP (asyncssh).

Each runs in a thread of the calling process on a free port, keeps its data across
``stop()``/``start()`` on the same port (to stage outages), and ``stop()`` cuts open
connections as a crashed server would. ``close()`` tears it down for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedbox.store.remote import RemoteStore

__all__ = [
    "BUCKET",
    "REMOTES",
    "SERVERS",
    "SFTP",
    "MotoS3",
    "Target",
    "WebDAV",
    "free_port",
    "s3_target",
    "sftp_target",
    "webdav_target",
]

BUCKET = "fedbox-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cut(sockets: set[socket.socket]) -> None:
    for sock in list(sockets):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class MotoS3:
    """moto's S3 with IAM authentication on: a wrong secret is refused like on AWS."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        sockets: set[socket.socket] = set()

        class Handler(MotoRequestHandler):
            def setup(self) -> None:
                super().setup()
                sockets.add(self.connection)

            def finish(self) -> None:
                sockets.discard(self.connection)
                super().finish()

        self._handler = Handler
        self._sockets = sockets
        self._app = DomainDispatcherApplication(create_backend_app)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self.start()
        self.key, self.secret = self._provision()

    def start(self) -> None:
        from werkzeug.serving import make_server

        self._server = make_server(
            "127.0.0.1", self.port, self._app, threaded=True, request_handler=self._handler
        )
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        _cut(self._sockets)

    def _provision(self) -> tuple[str, str]:
        """An IAM user allowed s3:*, the bucket, then authentication for every request."""
        import boto3
        import requests

        anon = {
            "endpoint_url": self.endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        iam = boto3.client("iam", **anon)
        iam.create_user(UserName="fedbox")
        key = iam.create_access_key(UserName="fedbox")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="fedbox", PolicyName="s3", PolicyDocument=json.dumps(policy))
        boto3.client("s3", **anon).create_bucket(Bucket=BUCKET)
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
        return key["AccessKeyId"], key["SecretAccessKey"]

    def close(self) -> None:
        self.stop()


class WebDAV:
    """wsgidav on cheroot, serving a folder, with basic auth for one user."""

    def __init__(self, root: Path) -> None:
        from wsgidav.wsgidav_app import WsgiDAVApp

        self.root = root
        self.port = free_port()
        self.user, self.password = "alice", "s3cret"
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "provider_mapping": {"/": str(root)},
            "http_authenticator": {
                "domain_controller": None,
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "simple_dc": {"user_mapping": {"*": {self.user: {"password": self.password}}}},
            "verbose": 0,
            "logging": {"enable": False},
        }
        self._app = WsgiDAVApp(config)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        from cheroot import wsgi

        self._server = wsgi.Server(("127.0.0.1", self.port), self._app, numthreads=8)
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def close(self) -> None:
        self.stop()


class SFTP:
    """An asyncssh SFTP server chrooted to a folder; only the generated client key may log in."""

    def __init__(self, root: Path, keys: Path) -> None:
        import asyncssh

        self.root = root
        self.port = free_port()
        keys.mkdir(parents=True, exist_ok=True)
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        client = asyncssh.generate_private_key("ssh-ed25519")
        stranger = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = keys / "client_ed25519"
        self.wrong_key = keys / "stranger_ed25519"
        client.write_private_key(self.client_key)
        stranger.write_private_key(self.wrong_key)
        self.known_hosts = keys / "known_hosts"
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {self._host_key.export_public_key().decode()}"
        )
        self._authorized = asyncssh.import_authorized_keys(client.export_public_key().decode())
        self._conns: set[Any] = set()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self._listener: Any = None
        self.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def start(self) -> None:
        import asyncssh

        conns = self._conns

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: Any) -> None:
                self._conn = conn
                conns.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                conns.discard(self._conn)

        root = str(self.root)

        async def listen() -> Any:
            return await asyncssh.listen(
                "127.0.0.1",
                self.port,
                server_host_keys=[self._host_key],
                authorized_client_keys=self._authorized,
                sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root),
                server_factory=Server,
                allow_scp=False,
            )

        self._listener = self._call(listen())

    def stop(self) -> None:
        async def stop() -> None:
            self._listener.close()
            await self._listener.wait_closed()
            for conn in list(self._conns):
                conn.abort()

        self._call(stop())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)


@dataclass
class Target:
    """One remote store under test: how to reach it, and how to reach it wrongly."""

    name: str
    url: str
    options: dict[str, Any]
    bad_options: dict[str, Any]
    server: Any = None
    stores: list[RemoteStore] = field(default_factory=list)

    def make(self, **extra: Any) -> RemoteStore:
        if self.name == "memory" and self.stores:
            extra.setdefault("fs", self.stores[0].fs)  # memory:// is private to a store
        store = RemoteStore(self.url, **{**self.options, **extra})
        self.stores.append(store)
        return store

    def make_bad(self, **extra: Any) -> RemoteStore:
        return self.make(**{**self.bad_options, **extra})

    def close(self) -> None:
        for store in self.stores:
            store.close()


def s3_target(server: MotoS3, prefix: str) -> Target:
    base = {"endpoint_url": server.endpoint, "client_kwargs": {"region_name": "us-east-1"}}
    return Target(
        "s3",
        f"s3://{BUCKET}/{prefix}",
        {**base, "key": server.key, "secret": server.secret},
        {**base, "key": server.key, "secret": "not-the-secret"},
        server,
    )


def webdav_target(server: WebDAV, prefix: str) -> Target:
    return Target(
        "webdav",
        f"webdav://127.0.0.1:{server.port}/{prefix}",
        {"auth": [server.user, server.password]},
        {"auth": [server.user, "wrong password"]},
        server,
    )


def sftp_target(server: SFTP, prefix: str) -> Target:
    base = {"known_hosts": str(server.known_hosts)}
    return Target(
        "sftp",
        f"sftp://fedbox@127.0.0.1:{server.port}/{prefix}",
        {**base, "client_keys": [str(server.client_key)]},
        {**base, "client_keys": [str(server.wrong_key)]},
        server,
    )


REMOTES = ["memory", "s3", "webdav", "sftp"]
SERVERS = ["s3", "webdav", "sftp"]


def _serve(kind: str, work: Path) -> None:
    """Run one server until stdin closes, after printing its URL and options as JSON."""
    import sys

    if kind == "s3":
        s3 = MotoS3()
        server: Any = s3
        url = f"s3://{BUCKET}"
        options: dict[str, Any] = {
            "endpoint_url": s3.endpoint,
            "key": s3.key,
            "secret": s3.secret,
            "client_kwargs": {"region_name": "us-east-1"},
        }
    elif kind == "webdav":
        (work / "dav").mkdir(parents=True, exist_ok=True)
        dav = WebDAV(work / "dav")
        server, url = dav, f"webdav://127.0.0.1:{dav.port}"
        options = {"auth": [dav.user, dav.password]}
    elif kind == "sftp":
        (work / "sftp").mkdir(parents=True, exist_ok=True)
        sftp = SFTP(work / "sftp", work / "keys")
        server, url = sftp, f"sftp://fedbox@127.0.0.1:{sftp.port}"
        options = {"client_keys": [str(sftp.client_key)], "known_hosts": str(sftp.known_hosts)}
    else:
        raise SystemExit(f"unknown server kind {kind!r}: s3, webdav or sftp")
    print(json.dumps({"url": url, "options": options}), flush=True)
    sys.stdin.read()
    server.close()


if __name__ == "__main__":
    import sys

    _serve(sys.argv[1], Path(sys.argv[2]))
