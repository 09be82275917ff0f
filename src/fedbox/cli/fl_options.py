"""What ``fedbox simulate``, ``bootstrap`` and ``run`` share: options, exit codes, helpers.

The Flower commands live in modules of their own, but they must accept the same
options with the same help, end with the same exit codes and print through one
console; declaring those here once keeps them from drifting apart.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fedbox.cli.consoles import stdout_console
from fedbox.cli.logsetup import adopt_flower_logger
from fedbox.cli.roots import fail
from fedbox.fl.config import AppConfig, AppConfigError, load_app_config, parse_run_config
from fedbox.fl.syft_compat import provide_syft_flwr

if TYPE_CHECKING:
    from fedbox.rpc import Box

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "AppDirArg",
    "EncryptOpt",
    "JoinTimeoutOpt",
    "JsonProgressOpt",
    "MinDatasitesOpt",
    "RunConfigOpt",
    "TimeoutOpt",
    "check_min_datasites",
    "check_store",
    "console",
    "load_app",
    "sigterm_as_interrupt",
]

console = stdout_console()

AppDirArg = Annotated[
    Path, typer.Argument(exists=True, file_okay=False, help="A Flower app dir (pyproject.toml).")
]
RunConfigOpt = Annotated[
    str | None,
    typer.Option("--run-config", help="Override \\[tool.flwr.app.config]: \"lr=0.1 name='x'\"."),
]
EncryptOpt = Annotated[
    bool | None,
    typer.Option(
        "--encrypt/--no-encrypt",
        help="End-to-end encryption \\[default: \\[tool.fedbox].encrypt, else on].",
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout", help="Max seconds to wait for replies \\[default: $FEDBOX_MSG_TIMEOUT or 120]."
    ),
]

MinDatasitesOpt = Annotated[
    int | None,
    typer.Option(
        "--min-datasites",
        help="Start the ServerApp once this many datasites have joined \\[default: all].",
    ),
]
JoinTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--join-timeout",
        help="Seconds to wait for --min-datasites datasites to join \\[default: 120].",
    ),
]
JsonProgressOpt = Annotated[
    bool,
    typer.Option(
        "--json-progress", help="Progress as one JSON object per line on stdout, for tools."
    ),
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def load_app(app_dir: Path, run_config: str | None) -> tuple[AppConfig, dict[str, Any]]:
    """The app's config and its run config with ``--run-config`` applied; a broken
    pyproject.toml ends the command as a usage error, with one line. Apps written for
    syft-flwr find ``syft_flwr`` importable from here on (:mod:`fedbox.fl.syft_compat`)."""
    provide_syft_flwr()
    try:
        app = load_app_config(app_dir)
        config = parse_run_config(app.run_config, run_config)
    except AppConfigError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    finally:
        adopt_flower_logger()  # in case Flower's helpers read an unusual config just now
    return app, config


def check_store(box: Box) -> None:
    """Touch the store once before anything starts, so refused credentials or an
    unreachable store end the command with one clear line, not a half-started run."""
    from fedbox.rpc import did_path

    box.store.exists(did_path(box.email))


def check_min_datasites(min_datasites: int | None, datasites: int) -> None:
    """``--min-datasites`` must be 1 to the number of datasites: else a usage error."""
    if min_datasites is not None and not 1 <= min_datasites <= datasites:
        raise fail(
            f"--min-datasites {min_datasites}: give 1 to {datasites} "
            f"(the number of datasites of this run)",
            EXIT_USAGE,
        )


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a participant the way Ctrl-C does: cleanly, through ``finally``."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
