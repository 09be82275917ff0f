"""``fedbox bootstrap``: write who takes part into a Flower app, once, before ``run``.

A deployment's participants each start ``fedbox run`` on their own copy of the app;
recording the aggregator and the datasites in its pyproject.toml beforehand is what
lets every one of them find its role without repeating that list on each command line.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fedbox.cli.fl_options import AppDirArg, console
from fedbox.cli.roots import fail
from fedbox.errors import FedboxError
from fedbox.fl.config import AppConfigError, bootstrap_syft_flwr, node_id_for
from fedbox.fl.config import bootstrap as write_bootstrap

__all__ = ["bootstrap"]


def bootstrap(
    app_dir: AppDirArg,
    aggregator: Annotated[str, typer.Option("--aggregator", help="Who runs the ServerApp.")],
    datasite: Annotated[
        list[str], typer.Option("--datasite", help="A data owner (repeat for each).")
    ],
    app_name: Annotated[
        str | None, typer.Option("--app-name", help="Fixed app name for the run.")
    ] = None,
    root: Annotated[str | None, typer.Option("--root", help="Default shared folder.")] = None,
    encrypt: Annotated[
        bool | None, typer.Option("--encrypt/--no-encrypt", help="Encrypt messages.")
    ] = None,
    syft_flwr: Annotated[
        bool,
        typer.Option(
            "--syft-flwr",
            help="Write what syft-flwr's bootstrap writes instead: \\[tool.syft_flwr] "
            "and main.py (runs under syft-flwr and under fedbox).",
        ),
    ] = False,
) -> None:
    """Write \\[tool.fedbox] (aggregator, datasites) into the app's pyproject.toml."""
    write = bootstrap_syft_flwr if syft_flwr else write_bootstrap
    try:
        path = write(app_dir, aggregator, datasite, app_name=app_name, root=root, encrypt=encrypt)
    except (AppConfigError, FedboxError, ValueError) as exc:
        raise fail(str(exc)) from exc
    table = "syft_flwr" if syft_flwr else "fedbox"
    console.print(
        f"wrote \\[tool.{table}] to {path.parent / 'pyproject.toml'}: "
        f"aggregator {aggregator}, {len(datasite)} datasites"
    )
    if syft_flwr:
        console.print(f"wrote {path}: `python main.py` starts a participant's role")
    for email in datasite:
        console.print(f"  {email}  node id {node_id_for(email)}")
