"""``--root`` and ``--storage-option``: what every command that touches a store accepts.

A root is a folder or a store URL. Storage options for a URL's backend come, from
lowest to highest precedence, from the app's ``[tool.fedbox].storage_options`` (commands
that read an app), ``$FEDBOX_STORAGE_OPTIONS`` and ``--storage-option KEY=VALUE`` flags.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from fedbox.cli.consoles import stderr_console
from fedbox.datasite.workspace import Workspace
from fedbox.errors import FedboxError
from fedbox.store import Store, StoreIdentity, open_store
from fedbox.store.registry import resolve_storage_options

__all__ = [
    "ENV_ROOT",
    "ROOT_HELP",
    "MaxPollOpt",
    "PollOpt",
    "RootOpt",
    "StorageOpt",
    "fail",
    "identity_of",
    "one_line",
    "open_root",
    "parse_storage_options",
    "poll_bounds",
    "print_error",
    "refusals_reported_here",
    "store_options",
]

ENV_ROOT = "FEDBOX_ROOT"
"""Environment variable read when ``--root`` is not given (a URL with a password in it
stays off the command line this way)."""

ROOT_HELP = (
    "The store: a folder, or a URL such as s3://bucket/prefix, gcs://bucket/prefix, "
    "webdav://host:port/path (http), webdavs://host/path (https), "
    "sftp://user@host:22/path or gdrive://FOLDER_ID. Credentials go in "
    "--storage-option or $FEDBOX_STORAGE_OPTIONS."
)

RootOpt = Annotated[str, typer.Option("--root", envvar=ENV_ROOT, help=ROOT_HELP)]
StorageOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-option",
        help=(
            "KEY=VALUE for a URL root's backend (repeat it). VALUE is JSON when it parses "
            '(auth=\'["user","pw"]\', timeout=30), else a string '
            "(endpoint_url=http://127.0.0.1:9000). Wins over $FEDBOX_STORAGE_OPTIONS "
            "(a JSON object, the place for secrets) and \\[tool.fedbox].storage_options."
        ),
    ),
]
PollOpt = Annotated[
    float | None,
    typer.Option(
        "--poll-interval",
        min=0.001,
        help="URL roots: seconds between listings while messages flow \\[default: 0.05].",
    ),
]
MaxPollOpt = Annotated[
    float | None,
    typer.Option(
        "--max-poll-interval",
        min=0.001,
        help="URL roots: the interval polling backs off to when idle \\[default: 2].",
    ),
]

_err = stderr_console()


def one_line(exc: BaseException | str) -> str:
    """An error message on one line (backends put newlines in theirs)."""
    return " ".join(str(exc).split())


def print_error(message: BaseException | str, console: Console | None = None) -> None:
    """``error: message`` on one line, never wrapped, markup in it shown as text."""
    (console or _err).print(f"[red]error:[/red] {escape(one_line(message))}", soft_wrap=True)


def fail(message: BaseException | str, code: int = 2, console: Console | None = None) -> typer.Exit:
    """Print the error (see :func:`print_error`) and return the Exit to raise."""
    print_error(message, console)
    return typer.Exit(code)


def parse_storage_options(items: Iterable[str] | None) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` to a dict; VALUE is JSON when it parses, else a string.

    ValueError names an item without ``=`` or with an empty key.
    """
    options: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--storage-option {item!r} is not KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options[key] = value
    return options


def store_options(
    root: str, flags: Iterable[str] | None, config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The merged storage options for ``root``; a usage error exits with code 2."""
    try:
        return resolve_storage_options(root, config, parse_storage_options(flags))
    except ValueError as exc:
        raise fail(str(exc)) from exc


def poll_bounds(
    poll_interval: float | None, max_poll_interval: float | None
) -> tuple[float | None, float | None]:
    """Check the two flags together; a lone ``--poll-interval`` above the default
    ceiling raises the ceiling with it."""
    from fedbox.store import DEFAULT_MAX_POLL_INTERVAL

    if poll_interval is not None and max_poll_interval is not None:
        if poll_interval > max_poll_interval:
            raise fail("--poll-interval must not exceed --max-poll-interval")
    elif poll_interval is not None and poll_interval > DEFAULT_MAX_POLL_INTERVAL:
        max_poll_interval = poll_interval
    return poll_interval, max_poll_interval


@contextmanager
def refusals_reported_here() -> Iterator[None]:
    """While a command connects: a store logs refused credentials itself (once, for
    long-running participants), but here the command prints the error, so the store's
    record is held back rather than shown twice."""
    log = logging.getLogger("fedbox.store.remote")

    def not_refusals(record: logging.LogRecord) -> bool:
        return "refused our credentials" not in str(record.msg)

    log.addFilter(not_refusals)
    try:
        yield
    finally:
        log.removeFilter(not_refusals)


def identity_of(workspace: Workspace) -> StoreIdentity:
    """Who a command acts as, for :func:`open_root`: a ``hub://`` store logs in with
    this identity's saved login (from its state dir), not whichever one it finds."""
    return StoreIdentity(workspace.email, workspace.state_dir)


@contextmanager
def open_root(
    root: str | os.PathLike[str],
    flags: Iterable[str] | None,
    identity: StoreIdentity | None = None,
) -> Iterator[Store]:
    """The store at ``root`` (closed afterwards); bad roots and options exit with code 2.
    ``identity`` is who the command acts as (a ``hub://`` store logs in as them).

    Errors from using the store (refused credentials, a store that stays unreachable)
    propagate as FedboxError; the ``fedbox`` entry point prints them on one line.
    """
    options = store_options(str(root), flags)
    try:
        store = open_store(root, identity=identity, **options)
    except (FedboxError, ValueError, TypeError) as exc:  # unknown scheme, missing backend
        raise fail(str(exc)) from exc
    try:
        with refusals_reported_here():
            yield store
    finally:
        store.close()
