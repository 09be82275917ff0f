"""``fedbox inspect FILE``: what a message file says, and whether it is intact."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.table import Table

from fedbox.crypto import describe_enc
from fedbox.datasite.paths import BLOBS_DIR, parse_message_path
from fedbox.datasite.workspace import Workspace
from fedbox.errors import CorruptMessage, FedboxError
from fedbox.rpc.envelope import Header, read_header
from fedbox.rpc.payload import open_payload
from fedbox.rpc.sealing import Sealer
from fedbox.rpc.status import Status
from fedbox.store import LocalStore

__all__ = ["Inspection", "inspect_file", "inspect_message"]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _status_text(status: int | None) -> str:
    if status is None:
        return "-"
    try:
        return f"{status} {Status(status).name}"
    except ValueError:
        return str(status)


def _cipher_only(header: Header) -> bool:
    """An envelope v2 sealed body without a digest: its tags vouch for it, when opened."""
    return header.enc is not None and not header.body_sha256 and header.v >= 2


def _body_check(f: BinaryIO, header: Header) -> tuple[int, bool]:
    digest = None if _cipher_only(header) else hashlib.sha256()
    size = 0
    while chunk := f.read(1 << 20):
        if digest is not None:
            digest.update(chunk)
        size += len(chunk)
    matches = digest is None or digest.hexdigest() == header.body_sha256
    return size, size == header.body_len and matches


def _blob_of(path: Path, header: Header) -> Path | None:
    """The blob holding a broadcast message's body (``body_ref``), beside the message."""
    if header.body_ref is None:
        return None
    return path.parents[2] / BLOBS_DIR / header.body_ref


def _store_root(path: Path) -> Path | None:
    """The store root of a message file still in its place in the layout, else None."""
    try:
        parse_message_path("/".join(path.resolve().parts[-5:]))
    except FedboxError:
        return None
    return path.resolve().parents[4]


@dataclass(frozen=True, slots=True)
class Inspection:
    """What :func:`inspect_message` found: rows of (field, value in Rich markup), or the
    reason the header could not be read (``corrupt``)."""

    path: Path
    rows: list[tuple[str, str]]
    intact: bool
    corrupt: str | None = None


def inspect_file(
    path: Path, console: Console, *, email: str | None = None, state_dir: Path | None = None
) -> int:
    """Print the header and checks; exit code 0 if intact, 1 if corrupt."""
    found = inspect_message(path, email=email, state_dir=state_dir)
    if found.corrupt is not None:
        console.print(f"[red]corrupt[/red] {path}: {found.corrupt}")
        return 1
    table = Table(title=str(path), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in found.rows:
        table.add_row(key, value)
    console.print(table)
    return 0 if found.intact else 1


def inspect_message(
    path: Path, *, email: str | None = None, state_dir: Path | None = None
) -> Inspection:
    """The header and checks of a message file (``fedbox inspect``, the UI's messages).

    An encrypted body is checked (digest) and, if ``email`` is its recipient and that
    identity's keys are in ``state_dir``, opened too; otherwise the row ``encryption``
    says for whom it is encrypted.
    """
    from fedbox.fl.grid import ENDPOINT as FLOWER_ENDPOINT  # imports Flower: not at start-up

    total = path.stat().st_size
    with open(path, "rb") as f:
        try:
            header = read_header(f, path=str(path))
        except CorruptMessage as exc:
            return Inspection(path, [], intact=False, corrupt=str(exc))
        blob = _blob_of(path, header)
        if blob is None:
            body_size, intact = _body_check(f, header)
        elif blob.is_file() and not f.read(1):
            with open(blob, "rb") as body:
                body_size, intact = _body_check(body, header)
        else:
            body_size, intact = 0, False
    cipher = "" if header.enc is None else " of ciphertext"
    rows = [
        ("kind", header.kind),
        ("id", header.id),
        ("from", header.sender),
        ("to", header.recipient),
        ("app / endpoint", f"{header.app} / {header.endpoint}"),
        ("created", _when(header.created)),
        ("expires", _when(header.expires)),
        ("status", _status_text(header.status)),
        ("headers", ", ".join(f"{k}={v}" for k, v in header.headers.items()) or "-"),
        ("file size", f"{total:,} bytes"),
        ("body", f"{header.body_len:,} bytes{cipher} (found {body_size:,})"),
        ("sha256", header.body_sha256 or "- (the cipher's tags vouch for the body)"),
        *([("body blob", str(_blob_of(path, header)))] if header.body_ref else []),
        ("digest check", _check_text(intact, header)),
        ("encryption", "none (plaintext)" if header.enc is None else describe_enc(header.enc)),
    ]
    if intact and header.enc is not None and email is not None:
        rows += _opened_rows(path, header, email, state_dir)
    elif intact and header.enc is None and header.endpoint == FLOWER_ENDPOINT:
        rows += _body_rows(path, header, None)
    return Inspection(path, rows, intact=intact)


def _check_text(intact: bool, header: Header) -> str:
    if not intact:
        return "[red]MISMATCH[/red]"
    if _cipher_only(header):
        return "[green]ok[/green] (size; the tags are checked when it is opened)"
    return "[green]ok[/green]"


def _opened_rows(
    path: Path, header: Header, email: str, state_dir: Path | None
) -> list[tuple[str, str]]:
    """The body of an encrypted message, decrypted with ``email``'s keys, if it is for them."""
    if header.recipient != email:
        why = (
            f"you sent it, encrypted for {header.recipient}: only they can open it"
            if header.sender == email
            else f"encrypted for {header.recipient}, not {email}"
        )
        return [("decrypted", f"[yellow]no: {why}[/yellow]")]
    keys = Workspace.for_email(email, state_dir).state_dir
    if not (keys / "keys" / "identity.json").is_file():
        return [("decrypted", f"[red]no: no keys of {email} under {keys}[/red]")]
    try:
        sealer = Sealer(_store_of(path), keys, email)
    except FedboxError as exc:  # a damaged key file, an unreadable store
        return [("decrypted", f"[red]no: {exc}[/red]")]
    return _body_rows(path, header, sealer)


def _store_of(path: Path) -> LocalStore:
    root = _store_root(path)
    return LocalStore(root if root is not None else path.parent, watch_mode="poll")


def _body_rows(path: Path, header: Header, sealer: Sealer | None) -> list[tuple[str, str]]:
    """What a body holds: for Flower, message type, records, array shapes and sizes
    (reading the blobs it refers to when the file is still in its store); for other
    bodies, that they decrypted and authenticated."""
    from fedbox.fl.codec import describe_body
    from fedbox.fl.grid import ENDPOINT as FLOWER_ENDPOINT

    store = sealer.store if sealer is not None else _store_of(path)
    f = open(path, "rb")  # noqa: SIM115 (the payload owns and closes it)
    try:
        read_header(f, path=str(path))
        payload = open_payload(
            store, f, header, writer=header.sender, reader=header.recipient, sealer=sealer
        )
    except FedboxError as exc:
        f.close()
        return [("body", f"[red]unreadable: {exc}[/red]")]
    with payload:
        if header.endpoint == FLOWER_ENDPOINT:
            rows = describe_body(payload)
            return rows or [("flower message", "[red]not a Flower message[/red]")]
        try:
            size = len(payload.read())
        except FedboxError as exc:
            return [("decrypted", f"[red]no: {exc}[/red]")]
    return [("decrypted", f"[green]ok[/green], {size:,} bytes of plaintext, authenticated")]
