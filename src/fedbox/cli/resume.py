"""Which run an aggregator command works on: the one it started before and did not
finish (resumed), or a new one (``--fresh``). Shared by ``fedbox run`` and ``simulate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fedbox.cli.fl_options import EXIT_FAILED, console
from fedbox.cli.roots import fail
from fedbox.errors import FedboxError
from fedbox.fl.config import AppConfig
from fedbox.fl.record import RunRecord

__all__ = ["FreshOpt", "open_record"]

FreshOpt = Annotated[
    bool,
    typer.Option(
        "--fresh",
        help="Start a new run even if this command's last run did not finish "
        "(by default it is resumed).",
    ),
]


def open_record(
    state_dir: Path,
    app: AppConfig,
    aggregator: str,
    datasites: tuple[str, ...],
    run_config: dict[str, Any],
    *,
    fixed_name: str | None,
    new_name: str,
    fresh: bool,
    command: str,
) -> RunRecord:
    """The run's record, opened (and locked) for the aggregator; a run that cannot be
    opened (finished under a fixed name, busy in another process) ends the command."""
    from fedbox.fl.replay import open_run_record, run_key  # imports Flower

    key = run_key(aggregator, app.fab_id, datasites, run_config)
    try:
        record = open_run_record(
            state_dir,
            fixed_name=fixed_name,
            new_name=new_name,
            key=key,
            app=app.project,
            run_config=run_config,
            datasites=datasites,
            fresh=fresh,
        )
    except FedboxError as exc:
        raise fail(str(exc), EXIT_FAILED) from exc
    if record.info.restarts:
        console.print(
            f"fedbox {command}: resuming run {record.info.name} "
            f"(started {record.info.restarts} times before; --fresh starts a new one)",
            highlight=False,
        )
    return record
