"""``fedbox keys``: your encryption keys, peers' fingerprints, trust, prekey rotation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fedbox.cli.options import EmailOpt, StateOpt
from fedbox.cli.roots import ENV_ROOT, ROOT_HELP, RootOpt, StorageOpt, identity_of, open_root
from fedbox.crypto import DEFAULT_RETAINED_PREKEYS, Identity, TrustStore, normalize_fingerprint
from fedbox.datasite.identity import validate_email
from fedbox.datasite.workspace import Workspace
from fedbox.errors import CryptoError
from fedbox.rpc.sealing import did_path, publish_keys, read_published
from fedbox.store import Store

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help="End-to-end encryption keys: create and publish, show, trust, rotate.",
    no_args_is_help=True,
)
console = Console()


def _workspace(email: str, state_dir: Path | None) -> Workspace:
    return Workspace.for_email(validate_email(email), state_dir)


def _existing_identity(workspace: Workspace) -> Identity:
    """Our keys; exit 1 naming the fix if there are none yet (never create them here)."""
    if not (workspace.state_dir / "keys" / "identity.json").exists():
        console.print(
            f"[red]no keys for {workspace.email}[/red] in {workspace.state_dir}; "
            f"create them with: fedbox keys init --root ROOT --email {workspace.email}"
        )
        raise typer.Exit(1)
    return Identity.load_or_create(workspace.state_dir, workspace.email)


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


@keys_app.command("init")
def init(
    root: RootOpt, email: EmailOpt, state_dir: StateOpt = None, storage_option: StorageOpt = None
) -> None:
    """Create your keys (if needed) and publish your public keys in the store."""
    workspace = _workspace(email, state_dir).ensure()
    with open_root(root, storage_option, identity_of(workspace)) as store:
        existed = (workspace.state_dir / "keys" / "identity.json").exists()
        identity = Identity.load_or_create(workspace.state_dir, workspace.email)
        path = publish_keys(store, identity)
    console.print(f"{'kept existing' if existed else 'created'} keys for {identity.email}")
    console.print(f"fingerprint {identity.public_bundle().fingerprint}")
    console.print(f"published at {path}")


@keys_app.command("show")
def show(
    root: RootOpt,
    email: EmailOpt,
    peer: Annotated[
        str | None, typer.Argument(help="A peer's email; omit it for your own keys.")
    ] = None,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
) -> None:
    """Fingerprints: yours, or a peer's published one and whether you trust it."""
    workspace = _workspace(email, state_dir)
    with open_root(root, storage_option, identity_of(workspace)) as store:
        if peer is None or peer == workspace.email:
            _show_own(store, workspace)
            return
        code = _show_peer(store, workspace, validate_email(peer))
    raise typer.Exit(code)


def _show_own(store: Store, workspace: Workspace) -> None:
    identity = _existing_identity(workspace)
    bundle = identity.public_bundle()
    try:
        published = read_published(store, workspace.email)
    except CryptoError:
        published = None
    if published is None:
        state = f"[yellow]not published[/yellow]: run fedbox keys init --email {identity.email}"
    elif published == bundle:
        state = f"yes, {did_path(identity.email)}"
    else:
        state = (
            "[yellow]the published keys differ from yours[/yellow]: "
            f"republish with fedbox keys init --email {identity.email}"
        )
    console.print(
        _table(
            f"keys of {identity.email}",
            [
                ("fingerprint", bundle.fingerprint),
                ("prekey", f"{identity.prekey_id} (held: {len(identity.prekey_ids)})"),
                ("published", state),
            ],
        )
    )


def _show_peer(store: Store, workspace: Workspace, peer: str) -> int:
    try:
        bundle = read_published(store, peer)
    except CryptoError as exc:
        console.print(f"[red]no usable keys for {peer}[/red]: {exc}")
        return 1
    pinned = TrustStore(workspace.state_dir).pinned(peer)
    code = 0
    if pinned is None:
        trust = (
            "not pinned yet: it is pinned on first use. Check the fingerprint with "
            f"{peer} out of band, or pin it now: fedbox keys trust {peer} {bundle.fingerprint} "
            f"--email {workspace.email}"
        )
    elif pinned == bundle.fingerprint:
        trust = "[green]trusted[/green] (pinned)"
    else:
        code = 1
        trust = (
            f"[red]CHANGED[/red]: you pinned {pinned}. Messages are refused until you check "
            f"the new fingerprint with {peer} and run: fedbox keys trust {peer} "
            f"{bundle.fingerprint} --email {workspace.email}"
        )
    console.print(
        _table(
            f"keys of {peer} (as seen by {workspace.email})",
            [
                ("fingerprint", bundle.fingerprint),
                ("prekey", bundle.prekey_id),
                ("published", did_path(peer)),
                ("trust", trust),
            ],
        )
    )
    return code


@keys_app.command("trust")
def trust(
    peer: Annotated[str, typer.Argument(help="The peer's email.")],
    fingerprint: Annotated[str, typer.Argument(help="Their fingerprint, checked with them.")],
    email: EmailOpt,
    state_dir: StateOpt = None,
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            envvar=ENV_ROOT,
            help=f"Also check the fingerprint against their published keys. {ROOT_HELP}",
        ),
    ] = None,
    storage_option: StorageOpt = None,
) -> None:
    """Pin a peer's identity key (e.g. after they reset their keys)."""
    workspace = _workspace(email, state_dir)
    peer = validate_email(peer)
    fp = normalize_fingerprint(fingerprint)
    if root is not None:
        with open_root(root, storage_option, identity_of(workspace)) as store:
            published = read_published(store, peer)
        if published.fingerprint != fp:
            console.print(
                f"[red]not pinned[/red]: the keys published for {peer} have fingerprint "
                f"{published.fingerprint}, not {fp}"
            )
            raise typer.Exit(1)
    pins = TrustStore(workspace.state_dir)
    previous = pins.pinned(peer)
    pins.trust(peer, fp)
    was = "" if previous in (None, fp) else f" (replacing {previous})"
    console.print(f"trusted {peer}: {fp}{was}")


@keys_app.command("rotate")
def rotate(
    root: RootOpt,
    email: EmailOpt,
    state_dir: StateOpt = None,
    retain: Annotated[
        int, typer.Option(help="Older prekeys kept so messages in flight still open.")
    ] = DEFAULT_RETAINED_PREKEYS,
    storage_option: StorageOpt = None,
) -> None:
    """Make a new prekey and republish; your identity key and fingerprint stay the same."""
    workspace = _workspace(email, state_dir)
    identity = _existing_identity(workspace)
    old = identity.prekey_id
    with open_root(root, storage_option, identity_of(workspace)) as store:
        identity.rotate_prekey(retain=retain)
        path = publish_keys(store, identity)
    console.print(f"rotated the prekey of {identity.email}: {old} -> {identity.prekey_id}")
    console.print(f"kept {len(identity.prekey_ids) - 1} older prekeys; published at {path}")
