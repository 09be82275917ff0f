"""``fedbox hub``: run the sync server and administer its logins."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from fedbox.datasite.identity import validate_email

if TYPE_CHECKING:
    from fedbox.hub.settings import HubSettings

__all__ = ["hub_app", "login_command"]

hub_app = typer.Typer(help="The hub: fedbox's own sync server.", no_args_is_help=True)
console = Console()

DataOpt = Annotated[Path, typer.Option("--data", help="The hub's folder: hub.db, blobs/, hub.key.")]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy URL of the metadata DB [default: DATA/hub.db]."),
]


def _settings(data: Path, db: str | None, **values: Any) -> HubSettings:
    # The hub is an optional extra: imported when a hub command runs, not with the CLI.
    from fedbox.hub.settings import HubSettings, SmtpSettings

    smtp = None
    host = os.environ.get("FEDBOX_HUB_SMTP_HOST")
    if host:
        smtp = SmtpSettings(
            host=host,
            port=int(os.environ.get("FEDBOX_HUB_SMTP_PORT", "587")),
            username=os.environ.get("FEDBOX_HUB_SMTP_USER"),
            password=os.environ.get("FEDBOX_HUB_SMTP_PASSWORD"),
            sender=os.environ.get("FEDBOX_HUB_SMTP_FROM", "fedbox-hub@localhost"),
        )
    return HubSettings(data=data, db_url=db, smtp=smtp, **values)


@hub_app.command()
def serve(
    data: DataOpt,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8700,
    db: DbOpt = None,
    blobs: Annotated[
        str | None, typer.Option("--blobs", help="Folder or fsspec URL [default: DATA/blobs].")
    ] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Return login codes to the caller instead of mailing.")
    ] = False,
    access_ttl: Annotated[float, typer.Option(help="Seconds an access token lives.")] = 900.0,
    refresh_ttl: Annotated[float, typer.Option(help="Seconds a login (refresh token) lives.")] = 30
    * 86400.0,
    login_per_email: Annotated[
        int, typer.Option(help="Login requests allowed per email per window.")
    ] = 10,
    login_per_address: Annotated[
        int, typer.Option(help="Login requests allowed per client address per window.")
    ] = 60,
    quota_bytes: Annotated[int | None, typer.Option(help="Bytes each identity may store.")] = None,
    quota_files: Annotated[int | None, typer.Option(help="Files each identity may store.")] = None,
) -> None:
    """Serve a hub. SMTP for login codes comes from FEDBOX_HUB_SMTP_HOST/_PORT/_USER/
    _PASSWORD/_FROM; with --dev no mail is sent."""
    import uvicorn

    from fedbox.hub.app import create_app

    settings = _settings(
        data, db, blobs=blobs, dev=dev, access_ttl=access_ttl, refresh_ttl=refresh_ttl,
        login_per_email=login_per_email, login_per_address=login_per_address,
        quota_bytes=quota_bytes, quota_files=quota_files,
    )  # fmt: skip
    if settings.smtp is None and not dev:
        console.print(
            "[yellow]no SMTP settings and not --dev: nobody can log in[/yellow] "
            "(set FEDBOX_HUB_SMTP_HOST, or pass --dev for local use)"
        )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", ws="websockets")


@hub_app.command()
def revoke(
    email: Annotated[str, typer.Argument(help="The identity whose logins end now.")],
    data: DataOpt,
    db: DbOpt = None,
) -> None:
    """End every login of EMAIL: its refresh tokens and, at their next use, access tokens."""
    from fedbox.hub.app import build_hub

    hub = build_hub(_settings(data, db))
    try:
        count = hub.sessions.revoke(validate_email(email))
    finally:
        hub.index.engine.dispose()
    console.print(f"revoked {count} session(s) of {email}")


def login_command(
    hub: Annotated[str, typer.Option("--hub", help="The hub: hub://HOST:PORT or hubs://...")],
    email: Annotated[str, typer.Option("--email", help="Your identity (an email).")],
    code: Annotated[str | None, typer.Option("--code", help="The code the hub mailed you.")] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Private state dir [default: $FEDBOX_HOME/EMAIL]."),
    ] = None,
) -> None:
    """Log in to a hub; the tokens are kept (mode 0600) in your state dir."""
    from fedbox.hub.credentials import login, request_code

    email = validate_email(email)
    if code is None:
        code = request_code(hub, email)  # a --dev hub answers with the code itself
        if code is None:
            code = typer.prompt(f"code mailed to {email}")
    saved = login(hub, email, code, state_dir)
    console.print(f"logged in to {saved.url} as {email}; tokens in {saved.file}")
