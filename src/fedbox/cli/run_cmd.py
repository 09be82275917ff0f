"""``fedbox run``: one participant of a deployment, the aggregator or a datasite.

Every participant starts the same command with the same app; the app's
``[tool.fedbox]`` config (or the flags that override it) decides which role ``--email``
plays. This module turns that into a connected box and runs the role until the run
ends, so a participant never needs to know more than the app dir and its identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from fedbox.cli.fl_options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    AppDirArg,
    EncryptOpt,
    RunConfigOpt,
    TimeoutOpt,
    check_store,
    close_box,
    console,
    load_app,
    quiet_flower,
    sigterm_as_interrupt,
)
from fedbox.cli.options import ChunkSizeOpt, ChunkThresholdOpt
from fedbox.cli.progress import report_outcome, run_with_progress
from fedbox.cli.roots import (
    ENV_ROOT,
    ROOT_HELP,
    MaxPollOpt,
    PollOpt,
    StorageOpt,
    fail,
    poll_bounds,
    print_error,
    refusals_reported_here,
    store_options,
)
from fedbox.errors import FedboxError
from fedbox.fl.client import ClientNode, client_app_loader, node_config_for
from fedbox.fl.config import AppConfig
from fedbox.fl.discovery import wait_for_run
from fedbox.fl.memory import keep_freed_memory
from fedbox.fl.server import ServerOutcome, run_server
from fedbox.fl.simulate import connect_local, default_app_name, display_root, resolve_encrypt
from fedbox.fl.tally import RunTally
from fedbox.rpc import Box

__all__ = ["run"]


def run(
    app_dir: AppDirArg,
    email: Annotated[str, typer.Option("--email", help="Your identity in the federation.")],
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            envvar=ENV_ROOT,
            help=f"The shared store \\[default: \\[tool.fedbox].root]. {ROOT_HELP}",
        ),
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Your data dir (datasites).")] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Private state \\[default: $FEDBOX_HOME/EMAIL]."),
    ] = None,
    app_name: Annotated[
        str | None,
        typer.Option("--app-name", help="The run's app name \\[default: config or new]."),
    ] = None,
    aggregator: Annotated[
        str | None, typer.Option("--aggregator", help="Override \\[tool.fedbox].aggregator.")
    ] = None,
    datasite: Annotated[
        list[str] | None, typer.Option("--datasite", help="Override \\[tool.fedbox].datasites.")
    ] = None,
    partition_id: Annotated[int | None, typer.Option("--partition-id", hidden=True)] = None,
    num_partitions: Annotated[int | None, typer.Option("--num-partitions", hidden=True)] = None,
    volatile: Annotated[bool, typer.Option("--volatile", hidden=True)] = False,
    run_config: RunConfigOpt = None,
    timeout: TimeoutOpt = None,
    stop_wait: Annotated[float, typer.Option("--stop-wait", help="Seconds for stop acks.")] = 15.0,
    encrypt: EncryptOpt = None,
    storage_option: StorageOpt = None,
    poll_interval: PollOpt = None,
    max_poll_interval: MaxPollOpt = None,
    chunk_threshold: ChunkThresholdOpt = None,
    chunk_size: ChunkSizeOpt = None,
) -> None:
    """Take part in a deployment: aggregator or datasite, as the app's config says.

    The aggregator runs the ServerApp; a datasite serves its ClientApp until the
    aggregator says stop. The store is a shared folder or a URL (a bucket, a WebDAV
    share, an SFTP server) that every participant can reach.
    """
    app, config = load_app(app_dir, run_config)
    keep_freed_memory()
    fed = app.federation
    encrypted = resolve_encrypt(encrypt, app)
    agg = aggregator or fed.aggregator
    sites = tuple(datasite or fed.datasites)
    root = root or fed.root
    if not root:
        raise fail("no --root given and [tool.fedbox] has no root")
    store = _StoreArgs(
        root,
        store_options(root, storage_option, fed.storage_options),
        *poll_bounds(poll_interval, max_poll_interval),
    )
    if agg is None:
        raise fail(f"no aggregator: run `fedbox bootstrap {app_dir}` or pass --aggregator")
    if email == agg:
        if not sites:
            raise fail("no datasites: run `fedbox bootstrap` or pass --datasite")
        quiet_flower()
        raise typer.Exit(
            _run_aggregator(
                app,
                config,
                email,
                store,
                state_dir,
                app_name or fed.app_name,
                sites,
                timeout,
                stop_wait,
                encrypt=encrypted,
            )
        )
    if sites and email not in sites and partition_id is None:
        raise fail(f"{email} is neither the aggregator ({agg}) nor a datasite of this app")
    index = partition_id if partition_id is not None else sites.index(email)
    count = num_partitions if num_partitions is not None else len(sites)
    raise typer.Exit(
        _run_datasite(
            app,
            config,
            email,
            agg,
            store,
            state_dir,
            app_name or fed.app_name,
            index,
            count,
            data,
            durable=not volatile,
            encrypt=encrypted,
        )
    )


@dataclass(frozen=True, slots=True)
class _StoreArgs:
    """Where ``fedbox run`` connects: the root, its merged options, the polling bounds."""

    root: str
    options: dict[str, Any]
    poll_interval: float | None
    max_poll_interval: float | None

    def connect(self, email: str, state_dir: Path | None, *, durable: bool, encrypt: bool) -> Box:
        """The participant's box, the store checked once; errors exit with one line."""
        with refusals_reported_here():
            try:
                box = connect_local(
                    self.root,
                    email,
                    state_dir,
                    durable=durable,
                    encrypt=encrypt,
                    storage_options=self.options,
                    poll_interval=self.poll_interval,
                    max_poll_interval=self.max_poll_interval,
                )
            except (FedboxError, ValueError, TypeError) as exc:
                raise fail(str(exc), EXIT_FAILED) from exc
            try:
                check_store(box)
            except FedboxError as exc:
                close_box(box)
                raise fail(str(exc), EXIT_FAILED) from exc
        return box


def _run_aggregator(
    app: AppConfig,
    config: dict[str, Any],
    email: str,
    store: _StoreArgs,
    state_dir: Path | None,
    app_name: str | None,
    sites: tuple[str, ...],
    timeout: float | None,
    stop_wait: float,
    *,
    encrypt: bool,
) -> int:
    name = app_name or default_app_name(email, app.project)
    console.print(
        f"fedbox run: {email} aggregating {app.fab_id} as {name} over {display_root(store.root)}",
        highlight=False,
    )
    tally = RunTally(sites)
    box = store.connect(email, state_dir, durable=True, encrypt=encrypt)
    try:

        def body(t: RunTally) -> ServerOutcome:
            return run_server(
                box, app, name, sites, config, timeout=timeout, callback=t, stop_wait=stop_wait
            )

        with sigterm_as_interrupt():
            outcome = run_with_progress(app.project, len(sites), body, tally)
        return report_outcome(outcome, tally)
    except FedboxError as exc:
        print_error(exc)
        return EXIT_FAILED
    finally:
        close_box(box)


def _run_datasite(
    app: AppConfig,
    config: dict[str, Any],
    email: str,
    aggregator: str,
    store: _StoreArgs,
    state_dir: Path | None,
    app_name: str | None,
    index: int,
    count: int,
    data: Path | None,
    *,
    durable: bool = True,
    encrypt: bool,
) -> int:
    if data is not None:
        os.environ["DATA_DIR"] = str(data.expanduser().resolve())
    box = store.connect(email, state_dir, durable=durable, encrypt=encrypt)
    with sigterm_as_interrupt():
        try:
            if app_name is None:
                console.print(
                    f"fedbox run: {email} waiting for a run of {app.project} from {aggregator}",
                    highlight=False,
                )
                app_name = wait_for_run(box.store, aggregator, email, app.project)
                assert app_name is not None
            node = ClientNode(
                box,
                app_name,
                client_app_loader(app),
                node_config_for(index, count, data),
                default_run_config=config,
                fsync=durable,
            )
            node.start()
            console.print(
                f"fedbox run: {email} serving {app_name} as node {node.node_id} "
                f"(partition {index} of {count})",
                highlight=False,
            )
            try:
                node.wait()
            finally:
                node.stop()
        except KeyboardInterrupt:
            console.print(f"fedbox run: {email} interrupted", highlight=False)
            return EXIT_INTERRUPTED
        except FedboxError as exc:
            print_error(exc)
            return EXIT_FAILED
        finally:
            close_box(box)
    console.print(
        f"fedbox run: {email} stopped by the aggregator after {node.runner.handled} messages",
        highlight=False,
    )
    return EXIT_OK
