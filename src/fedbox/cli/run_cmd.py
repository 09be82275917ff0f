"""``fedbox run``: one participant of a deployment, the aggregator or a datasite.

Every participant starts the same command with the same app; the app's
``[tool.fedbox]`` config (or the flags that override it) decides which role ``--email``
plays. This module turns that into a connected box and runs the role until the run
ends, so a participant never needs to know more than the app dir and its identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fedbox.cli.fl_options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    AppDirArg,
    EncryptOpt,
    JoinTimeoutOpt,
    JsonProgressOpt,
    MinDatasitesOpt,
    RunConfigOpt,
    TimeoutOpt,
    check_min_datasites,
    check_store,
    console,
    load_app,
    sigterm_as_interrupt,
)
from fedbox.cli.lifeline import die_with_parent
from fedbox.cli.logsetup import adopt_flower_logger
from fedbox.cli.options import ChunkSizeOpt, ChunkThresholdOpt, NodeConfigOpt
from fedbox.cli.progress import ProgressMode, progress_mode, report_outcome, run_with_progress
from fedbox.cli.resume import FreshOpt, open_record
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
from fedbox.datasite.workspace import Workspace
from fedbox.errors import FedboxError
from fedbox.fl.config import AppConfig, AppConfigError
from fedbox.fl.memory import keep_freed_memory
from fedbox.fl.record import RunRecord
from fedbox.fl.syft_compat import export_output_dir
from fedbox.fl.tally import RunTally
from fedbox.interruptible import wait_interruptibly

if TYPE_CHECKING:
    from flwr.app import UserConfig

    from fedbox.fl.client import ClientNode
    from fedbox.fl.events import EventCallback
    from fedbox.fl.server import ServerOutcome
    from fedbox.rpc import Box

# Flower, numpy and fedbox.rpc are imported inside the functions that use them, so
# ``fedbox --help`` and the commands that need none of them start fast.

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
    lifeline: Annotated[int | None, typer.Option("--lifeline", hidden=True)] = None,
    run_config: RunConfigOpt = None,
    timeout: TimeoutOpt = None,
    stop_wait: Annotated[
        float,
        typer.Option(
            "--stop-wait",
            help="Seconds to wait for the datasites to confirm the stop (a second Ctrl-C "
            "does not wait).",
        ),
    ] = 15.0,
    encrypt: EncryptOpt = None,
    require_pinned: Annotated[
        bool,
        typer.Option(
            "--require-pinned",
            help="Refuse peers whose key you have not pinned with `fedbox keys trust` "
            "(default: pin a new peer's key on first contact, with a warning).",
        ),
    ] = False,
    storage_option: StorageOpt = None,
    poll_interval: PollOpt = None,
    max_poll_interval: MaxPollOpt = None,
    chunk_threshold: ChunkThresholdOpt = None,
    chunk_size: ChunkSizeOpt = None,
    node_config: NodeConfigOpt = None,
    min_datasites: MinDatasitesOpt = None,
    join_timeout: JoinTimeoutOpt = None,
    json_progress: JsonProgressOpt = False,
    fresh: FreshOpt = False,
) -> None:
    """Take part in a deployment: aggregator or datasite, as the app's config says.

    The aggregator runs the ServerApp; a datasite serves its ClientApp until the
    aggregator says stop. The store is a shared folder or a URL (a bucket, a WebDAV
    share, an SFTP server) that every participant can reach. An aggregator started
    again after a crash or Ctrl-C resumes its unfinished run (``--fresh``: a new one).
    """
    from fedbox.fl.node_config import export_data_dir, node_config_for
    from fedbox.fl.simulate import default_app_name, resolve_encrypt

    if lifeline is not None:  # started by `fedbox simulate`: end with it
        die_with_parent(lifeline)
    app, config = load_app(app_dir, run_config)
    keep_freed_memory()
    fed = app.federation
    agg = aggregator or fed.aggregator
    sites = tuple(datasite or fed.datasites)
    if agg is None:
        raise fail(f"no aggregator: run `fedbox bootstrap {app_dir}` or pass --aggregator")
    where = _Connection.from_flags(
        app,
        root,
        storage_option,
        state_dir,
        poll_bounds(poll_interval, max_poll_interval),
        encrypt=resolve_encrypt(encrypt, app),
        require_pinned=require_pinned,
        fsync=not volatile,
        chunk_threshold=chunk_threshold,
        chunk_size=chunk_size,
    )
    name = app_name or fed.app_name
    _export_output_dir(email, state_dir, name or app.project)
    if email == agg:
        if not sites:
            raise fail("no datasites: run `fedbox bootstrap` or pass --datasite")
        check_min_datasites(min_datasites, len(sites))
        record = open_record(
            Workspace.for_email(email, state_dir).state_dir,
            app,
            email,
            sites,
            config,
            fixed_name=name,
            new_name=default_app_name(email, app.project),
            fresh=fresh,
            command="run",
        )
        plan = _AggregatorPlan(
            record,
            sites,
            timeout,
            stop_wait,
            min_datasites,
            join_timeout,
            progress_mode(json_progress),
        )
        raise typer.Exit(_run_aggregator(app, config, email, where, plan))
    if sites and email not in sites and partition_id is None:
        raise fail(f"{email} is neither the aggregator ({agg}) nor a datasite of this app")
    index = partition_id if partition_id is not None else sites.index(email)
    count = num_partitions if num_partitions is not None else len(sites)
    if data is not None:
        export_data_dir(data)
    own = _node_config(node_config or [], sites, index, email)
    node_config_values = {**node_config_for(index, count, data), **own}
    raise typer.Exit(_run_datasite(app, config, email, agg, where, name, node_config_values))


def _export_output_dir(email: str, state_dir: Path | None, run_name: str) -> None:
    """``$OUTPUT_DIR`` for the app (unless set): ``{state dir}/output/{run name}``, the
    state dir made (private) first, as connecting would."""
    workspace = Workspace.for_email(email, state_dir).ensure()
    export_output_dir(workspace.state_dir / "output" / run_name)


def _node_config(args: list[str], sites: tuple[str, ...], index: int, email: str) -> UserConfig:
    """This datasite's ``--node-config`` values; a bad one ends the command (usage error)."""
    from fedbox.fl.node_config import check_targets, node_config_overrides, parse_node_config

    try:
        entries = parse_node_config(args)
        if sites:
            check_targets(entries, sites)
    except AppConfigError as exc:
        raise fail(str(exc)) from exc
    return node_config_overrides(entries, index=index, email=email)


@dataclass(frozen=True, slots=True)
class _Connection:
    """Everything ``fedbox run`` passes to :func:`fedbox.rpc.connect`, decided once from
    the flags and the app's config."""

    root: str
    options: dict[str, Any]
    state_dir: Path | None
    poll_interval: float | None
    max_poll_interval: float | None
    encrypt: bool
    require_pinned: bool
    fsync: bool
    chunk_threshold: int | None
    chunk_size: int | None

    @classmethod
    def from_flags(
        cls,
        app: AppConfig,
        root: str | None,
        storage_flags: list[str] | None,
        state_dir: Path | None,
        poll: tuple[float | None, float | None],
        **settings: Any,
    ) -> _Connection:
        """The root (flag, else ``[tool.fedbox].root``) and its merged storage options;
        a missing root or bad options end the command as a usage error."""
        root = root or app.federation.root
        if not root:
            raise fail("no --root given and [tool.fedbox] has no root")
        options = store_options(root, storage_flags, app.federation.storage_options)
        if settings["require_pinned"] and not settings["encrypt"]:
            raise fail("--require-pinned needs encryption: drop --no-encrypt")
        return cls(root, options, state_dir, *poll, **settings)

    def connect(self, email: str) -> Box:
        """The participant's box, the store checked once; errors exit with one line."""
        from fedbox.rpc import connect

        with refusals_reported_here():
            try:
                box = connect(
                    self.root,
                    email,
                    state_dir=self.state_dir,
                    encrypt=self.encrypt,
                    require_pinned=self.require_pinned,
                    storage_options=self.options,
                    poll_interval=self.poll_interval,
                    max_poll_interval=self.max_poll_interval,
                    fsync=self.fsync,
                    chunk_threshold=self.chunk_threshold,
                    chunk_size=self.chunk_size,
                )
            except (FedboxError, ValueError, TypeError) as exc:
                raise fail(str(exc), EXIT_FAILED) from exc
            try:
                check_store(box)
            except FedboxError as exc:
                box.close()
                raise fail(str(exc), EXIT_FAILED) from exc
        return box


@dataclass(frozen=True, slots=True)
class _AggregatorPlan:
    """The aggregator's run: its record, datasites, waits and how progress is shown."""

    record: RunRecord
    sites: tuple[str, ...]
    timeout: float | None
    stop_wait: float
    min_datasites: int | None
    join_timeout: float | None
    mode: ProgressMode

    @property
    def app_name(self) -> str:
        return self.record.info.name


def _run_aggregator(
    app: AppConfig,
    config: dict[str, Any],
    email: str,
    where: _Connection,
    plan: _AggregatorPlan,
) -> int:
    from fedbox.fl.server import run_server
    from fedbox.fl.simulate import display_root

    adopt_flower_logger()  # Flower was imported just now, with its own handler
    console.print(
        f"fedbox run: {email} aggregating {app.fab_id} as {plan.app_name} "
        f"over {display_root(where.root)}",
        highlight=False,
    )
    tally = RunTally(plan.sites)
    box = where.connect(email)
    try:

        def serve(callback: EventCallback) -> ServerOutcome:
            return run_server(
                box,
                app,
                plan.app_name,
                plan.sites,
                config,
                timeout=plan.timeout,
                callback=callback,
                stop_wait=plan.stop_wait,
                min_datasites=plan.min_datasites,
                join_timeout=plan.join_timeout,
                record=plan.record,
            )

        with sigterm_as_interrupt():
            outcome = run_with_progress(app.project, len(plan.sites), serve, tally, plan.mode)
        return report_outcome(outcome, tally, mode=plan.mode)
    except FedboxError as exc:
        print_error(exc)
        return EXIT_FAILED
    finally:
        box.close()
        plan.record.close()


def _run_datasite(
    app: AppConfig,
    config: dict[str, Any],
    email: str,
    aggregator: str,
    where: _Connection,
    app_name: str | None,
    node_config: dict[str, Any],
) -> int:
    """Serve the run: its invitation is answered (:class:`JoinDesk`) before Flower and
    the ClientApp's side are loaded, which takes a client process most of a second."""
    from fedbox.fl.joining import JoinDesk

    box = where.connect(email)
    desk: JoinDesk | None = None
    with sigterm_as_interrupt():
        try:
            run_name = app_name or _find_run(box, app, aggregator)
            desk = JoinDesk(box.app(run_name))
            box.app(run_name).start()
            from fedbox.fl.client import ClientNode, client_app_loader

            adopt_flower_logger()  # Flower was imported just now, with its own handler
            node = ClientNode(
                box,
                run_name,
                client_app_loader(app),
                node_config,
                default_run_config=config,
                fsync=where.fsync,
                desk=desk,
            )
            _serve_until_stopped(node, node_config)
        except KeyboardInterrupt:
            console.print(f"fedbox run: {email} interrupted", highlight=False)
            return EXIT_INTERRUPTED
        except FedboxError as exc:
            print_error(exc)
            return EXIT_FAILED
        finally:
            if desk is not None:
                desk.close()
            box.close()
    console.print(
        f"fedbox run: {email} stopped by the aggregator after "
        f"{node.runner.handled + desk.joins} messages",
        highlight=False,
    )
    return EXIT_OK


def _find_run(box: Box, app: AppConfig, aggregator: str) -> str:
    """The run to serve when none is named: wait for the aggregator's first request."""
    from fedbox.fl.discovery import wait_for_run

    console.print(
        f"fedbox run: {box.email} waiting for a run of {app.project} from {aggregator}",
        highlight=False,
    )
    name = wait_for_run(box.store, aggregator, box.email, app.project)
    assert name is not None  # no timeout: only an interrupt ends the wait
    return name


def _serve_until_stopped(node: ClientNode, node_config: dict[str, Any]) -> None:
    node.start()
    console.print(
        f"fedbox run: {node.box.email} serving {node.app.name} as node {node.node_id} "
        f"(partition {node_config['partition-id']} of {node_config['num-partitions']})",
        highlight=False,
    )
    try:
        wait_interruptibly(node.stopped)
    finally:
        node.stop()
