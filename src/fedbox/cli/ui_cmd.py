"""``fedbox ui``: serve the local dashboard of one identity (``fedbox.ui``)."""

from __future__ import annotations

import contextlib
import socket
import webbrowser
from typing import Annotated

import typer
from rich.console import Console

from fedbox.cli.fl_options import sigterm_as_interrupt
from fedbox.cli.options import EmailOpt, StateOpt
from fedbox.cli.roots import ENV_ROOT, ROOT_HELP, StorageOpt, fail, open_root
from fedbox.datasite.identity import validate_email
from fedbox.datasite.workspace import Workspace
from fedbox.store import StoreIdentity

__all__ = ["ui"]

console = Console(stderr=True)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the URL is printed (so ``--port 0`` prints the
    port the system chose)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def ui(
    email: EmailOpt,
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            envvar=ENV_ROOT,
            help=f"The store (for published keys, datasets, message files). {ROOT_HELP}",
        ),
    ] = None,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    port: Annotated[int, typer.Option(help="Port (0: any free one).", min=0, max=65535)] = 8765,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on; anything but 127.0.0.1 is reachable by others."),
    ] = "127.0.0.1",
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the UI in the default browser.")
    ] = False,
) -> None:
    """A local web dashboard: runs, messages, peers, jobs.

    Prints its URL (with the token that grants access) and serves until Ctrl-C.
    """
    try:
        import uvicorn

        from fedbox.ui import UiSettings, create_app
        from fedbox.ui.settings import LOCAL_HOSTS
    except ImportError as exc:
        raise fail(f"fedbox ui needs its extra: pip install 'fedbox[ui]' ({exc})") from exc
    workspace = Workspace.for_email(validate_email(email), state_dir)
    sock = _listen(host, port)
    settings = UiSettings(
        email=workspace.email,
        state_dir=workspace.state_dir,
        root=root,
        host=host,
        port=sock.getsockname()[1],
    )
    if host not in LOCAL_HOSTS:
        console.print(
            f"[yellow]warning:[/yellow] listening on {host}: anyone who can reach it and "
            "learns the token can act as you; the token travels unencrypted (plain http)"
        )
    identity = StoreIdentity(workspace.email, workspace.state_dir)
    with (
        sock,
        open_root(root, storage_option, identity) if root else contextlib.nullcontext() as store,
    ):
        app = create_app(settings, store)
        print(f"fedbox ui for {workspace.email}: {settings.url}", flush=True)
        if open_browser:
            webbrowser.open(settings.url)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        # uvicorn shuts down on Ctrl-C or SIGTERM, then raises the signal again: as
        # KeyboardInterrupt here, which ends the command quietly, with code 0.
        with sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
