"""``fedbox bridge serve``: answer an app's HTTP requests with an ASGI application or a
local HTTP service (see ``fedbox.bridge``)."""

from __future__ import annotations

import importlib
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from fedbox.cli.options import EmailOpt, StateOpt
from fedbox.cli.roots import (
    MaxPollOpt,
    PollOpt,
    RootOpt,
    StorageOpt,
    fail,
    poll_bounds,
    refusals_reported_here,
    store_options,
)
from fedbox.errors import FedboxError

__all__ = ["bridge_app", "load_asgi"]

bridge_app = typer.Typer(help="HTTP over files: serve a web API to callers through the store.")
console = Console()


def load_asgi(spec: str, app_dir: Path) -> Any:
    """``module:attribute`` (uvicorn's spelling), imported with ``app_dir`` first on the
    path; typer.Exit with the reason when it is not there."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise fail(f"--asgi {spec!r} must be module:attribute, e.g. main:app")
    sys.path.insert(0, str(app_dir.resolve()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise fail(f"--asgi {spec!r}: cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise fail(f"--asgi {spec!r}: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise fail(f"--asgi {spec!r} is not an ASGI application (not callable)")
    return target


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@bridge_app.command("serve")
def serve_cmd(
    email: EmailOpt,
    root: RootOpt,
    app_name: Annotated[str, typer.Option("--app", help="The app name callers use.")],
    asgi: Annotated[
        str | None,
        typer.Option("--asgi", help="An ASGI application to run in-process: module:app."),
    ] = None,
    proxy: Annotated[
        str | None,
        typer.Option("--proxy", help="An HTTP service to forward to: http://127.0.0.1:PORT."),
    ] = None,
    app_dir: Annotated[
        Path, typer.Option("--app-dir", help="Where --asgi's module is looked up first.")
    ] = Path("."),
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="Let 'METHODS /path-glob' through, e.g. 'GET /api/**' or 'GET,POST /items/*' "
            "(repeat it). Default: everything.",
        ),
    ] = None,
    rate: Annotated[
        str | None, typer.Option("--rate", help="Requests per sender, e.g. 60/min, 5/s.")
    ] = None,
    max_concurrent: Annotated[
        int, typer.Option("--max-concurrent", min=1, help="Requests in the application at once.")
    ] = 8,
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt/--no-encrypt",
            help="Publish keys and accept only encrypted requests (--no-encrypt: anyone "
            "who can write the store can call as anyone).",
        ),
    ] = True,
    require_pinned: Annotated[
        bool,
        typer.Option("--require-pinned", help="Refuse callers whose key you have not pinned."),
    ] = False,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    poll_interval: PollOpt = None,
    max_poll_interval: MaxPollOpt = None,
) -> None:
    """Serve app NAME's HTTP requests until Ctrl-C (or SIGTERM): the backlog first, then
    each request as it lands. The caller's identity reaches the application as the
    header x-fedbox-sender."""
    try:
        from fedbox.bridge import Allowlist, parse_rate, serve
    except ImportError as exc:
        raise fail(f"the bridge needs httpx: pip install 'fedbox[bridge]' ({exc})") from exc
    from fedbox.rpc.connect import connect

    if (asgi is None) == (proxy is None):
        raise fail("give exactly one of --asgi module:app and --proxy http://127.0.0.1:PORT")
    if require_pinned and not encrypt:
        raise fail("--require-pinned needs encryption: drop --no-encrypt")
    try:
        allowlist = Allowlist(allow)
        limit = parse_rate(rate) if rate is not None else None
    except ValueError as exc:
        raise fail(str(exc)) from exc
    asgi_app = load_asgi(asgi, app_dir) if asgi is not None else None
    polls = poll_bounds(poll_interval, max_poll_interval)
    options = store_options(root, storage_option)
    with refusals_reported_here():
        try:
            box = connect(
                root,
                email,
                encrypt=encrypt,
                require_pinned=require_pinned,
                state_dir=state_dir,
                storage_options=options,
                poll_interval=polls[0],
                max_poll_interval=polls[1],
            )
        except (FedboxError, ValueError) as exc:
            raise fail(exc) from exc
    with box:
        try:
            bridge = serve(
                box,
                app_name,
                asgi_app=asgi_app,
                proxy_url=proxy,
                allow=allowlist.rules,
                rate=limit,
                max_concurrent=max_concurrent,
            )
        except ValueError as exc:
            raise fail(exc) from exc
        signal.signal(signal.SIGTERM, _interrupt)
        console.print(f"serving {app_name} for {email} -> {asgi or proxy}", soft_wrap=True)
        bridge.serve_forever()
