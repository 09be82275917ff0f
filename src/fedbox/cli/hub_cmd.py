"""``fedbox hub``: run the sync server and administer its logins."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from fedbox.cli.roots import StorageOpt, fail, store_options
from fedbox.datasite.identity import validate_email
from fedbox.errors import FedboxError

if TYPE_CHECKING:
    from fedbox.hub.settings import HubSettings

__all__ = ["hub_app", "login_command"]

hub_app = typer.Typer(help="The hub: fedbox's own sync server.", no_args_is_help=True)
console = Console()

DataOpt = Annotated[
    Path, typer.Option("--data", help="The hub's folder: hub.db, blobs/, upload staging.")
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="FEDBOX_HUB_DB",
        help="Metadata DB: postgresql://USER@HOST:PORT/DB or a SQLAlchemy URL "
        "\\[default: DATA/hub.db].",
    ),
]
BlobsOpt = Annotated[
    str | None,
    typer.Option(
        "--blobs",
        envvar="FEDBOX_HUB_BLOBS",
        help="File contents: a folder or a URL such as s3://bucket/prefix "
        "\\[default: DATA/blobs]. Credentials go in --storage-option or "
        "$FEDBOX_STORAGE_OPTIONS, as for remote stores.",
    ),
]


def _settings(
    data: Path,
    db: str | None,
    blobs: str | None = None,
    storage_options: list[str] | None = None,
    **values: Any,
) -> HubSettings:
    # The hub is an optional extra: imported when a hub command runs, not with the CLI.
    from fedbox.hub.settings import HubSettings

    options = store_options(blobs, storage_options) if blobs else {}
    return HubSettings(data=data, db_url=db, blobs=blobs, blobs_options=options, **values)


@hub_app.command()
def serve(
    data: DataOpt,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8700,
    db: DbOpt = None,
    blobs: BlobsOpt = None,
    storage_option: StorageOpt = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Return login codes to the caller instead of mailing.")
    ] = False,
    access_ttl: Annotated[float, typer.Option(help="Seconds an access token lives.")] = 900.0,
    refresh_ttl: Annotated[float, typer.Option(help="Seconds a login lives.")] = 2592000.0,
    login_per_email: Annotated[
        int, typer.Option(help="Login requests allowed per email per window.")
    ] = 10,
    login_per_address: Annotated[
        int, typer.Option(help="Login requests allowed per client address per window.")
    ] = 60,
    quota_bytes: Annotated[int | None, typer.Option(help="Bytes each identity may store.")] = None,
    quota_files: Annotated[int | None, typer.Option(help="Files each identity may store.")] = None,
    upload_expiry: Annotated[
        float, typer.Option(help="Seconds an unfinished upload may receive nothing before removal.")
    ] = 86400.0,
    smtp_host: Annotated[
        str | None,
        typer.Option(envvar="FEDBOX_HUB_SMTP_HOST", help="SMTP server for login codes."),
    ] = None,
    smtp_port: Annotated[int, typer.Option(envvar="FEDBOX_HUB_SMTP_PORT")] = 587,
    smtp_user: Annotated[str | None, typer.Option(envvar="FEDBOX_HUB_SMTP_USER")] = None,
    smtp_from: Annotated[
        str, typer.Option(envvar="FEDBOX_HUB_SMTP_FROM", help="Sender of login mails.")
    ] = "fedbox-hub@localhost",
    smtp_starttls: Annotated[
        bool, typer.Option(envvar="FEDBOX_HUB_SMTP_STARTTLS", help="Upgrade SMTP to TLS.")
    ] = True,
    direct_downloads_above: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Clients can reach the --blobs bucket: files of at least this many bytes "
            "are downloaded from it with presigned URLs (0: all), not through the hub.",
        ),
    ] = None,
    direct_url_expiry: Annotated[
        int, typer.Option(min=1, help="Seconds a presigned download URL stays valid.")
    ] = 300,
    feed_check: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Seconds between looks at the change log for writes whose notification "
            "was missed (the most such a write waits to be pushed).",
        ),
    ] = 5.0,
    session_check: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Seconds a login found live is trusted without asking the database again "
            "(the most a revocation whose notification was missed takes to land).",
        ),
    ] = 1.0,
    lifeline: Annotated[int | None, typer.Option("--lifeline", hidden=True)] = None,
) -> None:
    """Serve a hub. The SMTP password comes from FEDBOX_HUB_SMTP_PASSWORD only (a flag
    would show in the process list); with --dev no mail is sent."""
    import uvicorn

    from fedbox.cli.lifeline import die_with_parent
    from fedbox.hub.app import create_app
    from fedbox.hub.settings import SmtpSettings

    smtp = None
    if smtp_host:
        smtp = SmtpSettings(
            host=smtp_host, port=smtp_port, username=smtp_user, sender=smtp_from,
            starttls=smtp_starttls, password=os.environ.get("FEDBOX_HUB_SMTP_PASSWORD"),
        )  # fmt: skip
    settings = _settings(
        data, db, blobs, storage_option, dev=dev, access_ttl=access_ttl, refresh_ttl=refresh_ttl,
        login_per_email=login_per_email, login_per_address=login_per_address,
        quota_bytes=quota_bytes, quota_files=quota_files, upload_expiry=upload_expiry, smtp=smtp,
        feed_check=feed_check, session_check=session_check,
        direct_downloads_above=direct_downloads_above, direct_url_expiry=direct_url_expiry,
    )  # fmt: skip
    if smtp is None and not dev:
        console.print(
            "[yellow]no SMTP settings and not --dev: nobody can log in[/yellow] "
            "(pass --smtp-host or set FEDBOX_HUB_SMTP_HOST, or --dev for local use)"
        )
    if lifeline is not None:  # started by `fedbox simulate --hub`: end with it
        die_with_parent(lifeline)
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


@hub_app.command()
def migrate(data: DataOpt, db: DbOpt = None) -> None:
    """Upgrade the hub's database to this fedbox's schema, keeping every file and login.

    Stop every hub process over the database first; start them again after.
    """
    from fedbox.hub.migrate import upgrade
    from fedbox.hub.schema import open_engine

    settings = _settings(data, db)
    data.mkdir(parents=True, exist_ok=True)
    engine = open_engine(settings.database_url)
    try:
        before, after = upgrade(engine)
    except Exception as exc:  # Alembic and the driver raise many kinds; one line each
        raise fail(f"cannot migrate the hub database: {exc}", code=1) from exc
    finally:
        engine.dispose()
    if before == after:
        console.print(f"the hub database is at the newest schema ({after})")
    else:
        console.print(f"migrated the hub database from {before or 'empty'} to {after}")


def login_command(
    hub: Annotated[str, typer.Option("--hub", help="The hub: hub://HOST:PORT or hubs://...")],
    email: Annotated[str, typer.Option("--email", help="Your identity (an email).")],
    code: Annotated[str | None, typer.Option("--code", help="The code the hub mailed you.")] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Private state dir \\[default: $FEDBOX_HOME/EMAIL]."),
    ] = None,
) -> None:
    """Log in to a hub; the tokens are kept (mode 0600) in your state dir."""
    import httpx

    from fedbox.hub.credentials import login, request_code

    email = validate_email(email)
    try:
        if code is None:
            code = request_code(hub, email)  # a --dev hub answers with the code itself
            if code is None:
                code = typer.prompt(f"code mailed to {email}")
        saved = login(hub, email, code, state_dir)
    except (FedboxError, httpx.HTTPError) as exc:
        raise fail(f"cannot log in to {hub} as {email}: {exc}", code=1) from exc
    console.print(f"logged in to {saved.url} as {email}; tokens in {saved.file}")
