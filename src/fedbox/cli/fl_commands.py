"""``fedbox simulate``, ``fedbox bootstrap`` and ``fedbox run``: Flower over files.

Register them on the main app with :func:`register`. This module also runs on its
own (``python -m fedbox.cli.fl_commands run ...``): that is how ``simulate`` starts
its client processes, independent of how the main command is assembled.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from fedbox.cli.options import ChunkSizeOpt, ChunkThresholdOpt
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
from fedbox.fl.config import (
    AppConfig,
    AppConfigError,
    load_app_config,
    node_id_for,
    parse_run_config,
)
from fedbox.fl.config import bootstrap as write_bootstrap
from fedbox.fl.discovery import wait_for_run
from fedbox.fl.memory import keep_freed_memory
from fedbox.fl.server import ServerOutcome, run_server
from fedbox.fl.simulate import (
    InProcessClients,
    SimulationPlan,
    connect_local,
    default_app_name,
    display_root,
    plan_simulation,
    resolve_encrypt,
)
from fedbox.fl.tally import RunTally
from fedbox.rpc import Box
from fedbox.store import ENV_STORAGE_OPTIONS
from fedbox.store.registry import url_scheme

__all__ = ["bootstrap", "fl_app", "register", "run", "simulate"]

logger = logging.getLogger(__name__)
# Wide enough for the tables when output goes to a file or a pipe (Rich assumes 80).
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)

fl_app = typer.Typer(
    help="Flower over files.", no_args_is_help=True, pretty_exceptions_enable=False
)

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

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# -- shared helpers ---------------------------------------------------------------------


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    return fail(message, code, err_console)


def _check_store(box: Box) -> None:
    """Touch the store once before anything starts, so refused credentials or an
    unreachable store end the command with one clear line, not a half-started run."""
    box.store.exists(f"datasites/{box.email}/public/did.json")


def _load(app_dir: Path, run_config: str | None) -> tuple[AppConfig, dict[str, Any]]:
    try:
        app = load_app_config(app_dir)
        return app, parse_run_config(app.run_config, run_config)
    except AppConfigError as exc:
        raise _fail(str(exc)) from exc


def _quiet_flower() -> None:
    """Flower logs every step at INFO on its own handler; the live view replaces that
    unless the user asked for logs (``-v``)."""
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        logging.getLogger("flwr").setLevel(logging.WARNING)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a participant the way Ctrl-C does: cleanly, through ``finally``."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _fmt_metrics(metrics: dict[str, float], limit: int = 4) -> str:
    shown = [(k, v) for k, v in metrics.items() if k != "num-examples"][:limit]
    return "  ".join(f"{k}={v:.4g}" for k, v in shown)


# -- progress ----------------------------------------------------------------------------


class Progress:
    """Live view of a run: one row per (round, message type), totals on top."""

    def __init__(self, tally: RunTally, title: str, n_nodes: int) -> None:
        self.tally = tally
        self.title = title
        self.n_nodes = n_nodes
        self.started = time.monotonic()

    def phase_table(self, last: int | None = 12) -> Table:
        table = Table(expand=False, title=None)
        for column in (
            "round",
            "type",
            "replies",
            "errors",
            "timeouts",
            "sent",
            "received",
            "seconds",
        ):
            table.add_column(column, justify="right" if column != "type" else "left")
        table.add_column("metrics (mean over replies)")
        with self.tally.lock:
            phases = list(self.tally.phases.values())
        for p in phases[-last:] if last else phases:
            table.add_row(
                p.round or "-",
                p.message_type,
                f"{p.replied}/{p.sent}",
                str(p.errors) if p.errors else "",
                str(p.timeouts) if p.timeouts else "",
                _size(p.bytes_out),
                _size(p.bytes_in),
                "" if p.seconds is None else f"{p.seconds:.3f}",
                _fmt_metrics(p.metric_means()),
            )
        return table

    def __rich__(self) -> Group:
        out, inn = self.tally.totals()
        latest = self.tally.latest_phase()
        who = ""
        if latest is not None and latest.sent:
            names = ", ".join(e.split("@")[0] for e in latest.repliers[-6:])
            more = "..." if len(latest.repliers) > 6 else ""
            who = f"  last replies: {names}{more}"
        head = Text(
            f"{self.title}  {self.n_nodes} datasites  {time.monotonic() - self.started:.1f} s  "
            f"sent {_size(out)}  received {_size(inn)}{who}"
        )
        return Group(head, self.phase_table())


def _node_table(tally: RunTally, exit_codes: dict[str, int | None] | None = None) -> Table:
    table = Table(title="datasites")
    for column in ("datasite", "replies", "errors", "timeouts", "sent", "received", "stopped"):
        table.add_column(column)
    if exit_codes is not None:
        table.add_column("exit")
    with tally.lock:
        nodes = list(tally.nodes.values())
    for n in nodes:
        row = [
            n.email,
            f"{n.replied}/{n.sent}",
            str(n.errors) if n.errors else "",
            str(n.timeouts) if n.timeouts else "",
            _size(n.bytes_out),
            _size(n.bytes_in),
            "yes" if n.stopped else "no",
        ]
        if exit_codes is not None:
            code = exit_codes.get(n.email)
            row.append("running" if code is None else str(code))
        table.add_row(*row)
    return table


def _run_with_progress(
    title: str, n_nodes: int, body: Callable[[RunTally], ServerOutcome], tally: RunTally
) -> ServerOutcome:
    progress = Progress(tally, title, n_nodes)
    if console.is_terminal:
        with Live(progress, console=console, refresh_per_second=4, transient=True):
            outcome = body(tally)
    else:
        outcome = body(tally)
    console.print(progress.phase_table(last=None))
    return outcome


def _report(
    outcome: ServerOutcome, tally: RunTally, exit_codes: dict[str, int | None] | None = None
) -> int:
    console.print(_node_table(tally, exit_codes))
    with tally.lock:
        silent = sorted(n.email for n in tally.nodes.values() if n.timeouts)
        failing = sorted(n.email for n in tally.nodes.values() if n.errors)
    if silent:
        console.print(f"[yellow]did not answer in time:[/yellow] {', '.join(silent)}")
    if failing:
        console.print(f"[yellow]answered with errors:[/yellow] {', '.join(failing)}")
    if outcome.keys_missing:
        console.print(
            f"[yellow]never published keys:[/yellow] {', '.join(sorted(outcome.keys_missing))}"
        )
    if outcome.finished:
        console.print(f"[green]ServerApp finished[/green] in {outcome.seconds:.1f} s")
        return EXIT_OK
    if outcome.interrupted:
        console.print(
            f"[red]interrupted[/red] after {outcome.seconds:.1f} s; datasites told to stop"
        )
        return EXIT_INTERRUPTED
    console.print(
        f"[red]ServerApp failed[/red] after {outcome.seconds:.1f} s: "
        f"{type(outcome.error).__name__}: {outcome.error}"
    )
    return EXIT_FAILED


# -- simulate ----------------------------------------------------------------------------


def _client_command(plan: SimulationPlan, index: int, email: str) -> list[str]:
    """The command line of one client process. It shows in ``ps``, so nothing secret
    goes here: storage options, and a root URL with a password in it, travel in the
    environment (:func:`_client_env`)."""
    root = [] if _root_in_env(plan) else ["--root", plan.store_root]
    cmd = [
        sys.executable,
        "-m",
        "fedbox.cli.fl_commands",
        "run",
        str(plan.app.app_dir),
        "--email",
        email,
        *root,
        "--state-dir",
        str(plan.state_dir(email)),
        "--app-name",
        plan.app_name,
        "--aggregator",
        plan.aggregator,
        "--partition-id",
        str(index),
        "--num-partitions",
        str(len(plan.datasites)),
        "--volatile",
        "--encrypt" if plan.encrypt else "--no-encrypt",
    ]
    if plan.data_paths[index]:
        cmd += ["--data", str(plan.data_paths[index])]
    if plan.poll_interval is not None:
        cmd += ["--poll-interval", repr(plan.poll_interval)]
    if plan.max_poll_interval is not None:
        cmd += ["--max-poll-interval", repr(plan.max_poll_interval)]
    return cmd


def _root_in_env(plan: SimulationPlan) -> bool:
    return display_root(plan.store_root) != plan.store_root  # a URL with a password


def _client_env(plan: SimulationPlan) -> dict[str, str]:
    """The clients' environment: the store's merged options as ``$FEDBOX_STORAGE_OPTIONS``
    (a section for the root's scheme, which wins over the app's [tool.fedbox] options
    when a client reads them again), and the root itself if it carries a password."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    scheme = url_scheme(plan.store_root)
    if plan.remote and scheme is not None:
        try:
            env[ENV_STORAGE_OPTIONS] = json.dumps({scheme: dict(plan.storage_options)})
        except TypeError as exc:
            raise _fail(f"storage options must be JSON values to reach the clients: {exc}") from exc
    if _root_in_env(plan):
        env[ENV_ROOT] = plan.store_root
    return env


def _start_processes(plan: SimulationPlan) -> dict[str, subprocess.Popen[bytes]]:
    """One process per client, each in its own session so a terminal Ctrl-C reaches only
    the aggregator, which then stops them through the store (the behaviour under test)."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    env = _client_env(plan)
    for index, email in enumerate(plan.datasites):
        state = plan.state_dir(email)
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(state / "client.log", "ab") as log:
            procs[email] = subprocess.Popen(
                _client_command(plan, index, email),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
    return procs


def _reap(procs: dict[str, subprocess.Popen[bytes]], grace: float) -> dict[str, int | None]:
    deadline = time.monotonic() + grace
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.terminate()
    for proc in procs.values():
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {email: proc.returncode for email, proc in procs.items()}


def simulate(
    app_dir: AppDirArg,
    clients: Annotated[
        int | None, typer.Option("--clients", "-n", help="Number of clients \\[default: 3].")
    ] = None,
    run_config: RunConfigOpt = None,
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            help=f"Run over this store and keep it \\[default: a temporary folder]. {ROOT_HELP}",
        ),
    ] = None,
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", help="Data dir: once for all clients, or once per client."),
    ] = None,
    timeout: TimeoutOpt = None,
    inprocess: Annotated[
        bool, typer.Option("--inprocess", help="Host all clients in this process.")
    ] = False,
    stop_wait: Annotated[
        float, typer.Option("--stop-wait", help="Seconds to wait for clients to stop.")
    ] = 15.0,
    encrypt: EncryptOpt = None,
    storage_option: StorageOpt = None,
    poll_interval: PollOpt = None,
    max_poll_interval: MaxPollOpt = None,
    chunk_threshold: ChunkThresholdOpt = None,
    chunk_size: ChunkSizeOpt = None,
) -> None:
    """Run a Flower app on a local federation that talks only through one store.

    The store is a temporary folder unless --root names a folder or a URL: then every
    message goes through that bucket, WebDAV share or SFTP server, as in a deployment.
    """
    app, config = _load(app_dir, run_config)
    keep_freed_memory()
    poll_interval, max_poll_interval = poll_bounds(poll_interval, max_poll_interval)
    if not root and storage_option:
        raise _fail("--storage-option needs a URL --root")
    options = store_options(root, storage_option, app.federation.storage_options) if root else {}
    try:
        plan = plan_simulation(
            app,
            config,
            clients=clients,
            root=root or None,
            data=[str(d) for d in data or []],
            timeout=timeout,
            encrypt=encrypt,
            storage_options=options,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )
    except AppConfigError as exc:
        raise _fail(str(exc)) from exc
    _quiet_flower()
    if not plan.remote:
        Path(plan.store_root).mkdir(parents=True, exist_ok=True)
    console.print(
        f"fedbox simulate: {app.fab_id} with {len(plan.datasites)} "
        f"{'in-process' if inprocess else 'process'} clients"
        f"{'' if plan.encrypt else ' (encryption off)'}\n"
        f"  app    {plan.app_name}\n"
        f"  {'store ' if plan.remote else 'folder'} {display_root(plan.store_root)}\n"
        f"  state  {plan.state_root}",
        highlight=False,
    )
    tally = RunTally(plan.datasites)
    code = EXIT_FAILED
    host: InProcessClients | None = None
    procs: dict[str, subprocess.Popen[bytes]] = {}
    exit_codes: dict[str, int | None] | None = None
    try:
        with refusals_reported_here():
            box = plan.connect(plan.aggregator, durable=False)
            _check_store(box)
    except (FedboxError, ValueError) as exc:
        _discard_temp(plan)
        raise _fail(str(exc), EXIT_FAILED) from exc
    try:
        if inprocess:
            host = InProcessClients(plan)
        else:
            procs = _start_processes(plan)

        def body(t: RunTally) -> ServerOutcome:
            return run_server(
                box,
                app,
                plan.app_name,
                plan.datasites,
                plan.run_config,
                timeout=plan.timeout,
                callback=t,
                stop_wait=stop_wait,
            )

        outcome = _run_with_progress(app.project, len(plan.datasites), body, tally)
        if procs:
            exit_codes = _reap(procs, grace=stop_wait)
        code = _report(outcome, tally, exit_codes)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except FedboxError as exc:  # the store failed outside the ServerApp (e.g. the stop)
        print_error(exc, err_console)
        code = EXIT_FAILED
    finally:
        if procs and exit_codes is None:
            _reap(procs, grace=0)
        if host is not None:
            host.close()
        box.close()
        box.store.close()
        _discard_temp(plan)
        if plan.keep and not inprocess:
            console.print(f"client logs: {plan.state_root}/*/client.log", highlight=False)
    raise typer.Exit(code)


def _discard_temp(plan: SimulationPlan) -> None:
    if not plan.keep and plan.temp_dir is not None:
        shutil.rmtree(plan.temp_dir, ignore_errors=True)


# -- bootstrap ---------------------------------------------------------------------------


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
) -> None:
    """Write \\[tool.fedbox] (aggregator, datasites) into the app's pyproject.toml."""
    try:
        path = write_bootstrap(
            app_dir, aggregator, datasite, app_name=app_name, root=root, encrypt=encrypt
        )
    except (AppConfigError, FedboxError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    console.print(
        f"wrote \\[tool.fedbox] to {path}: aggregator {aggregator}, {len(datasite)} datasites"
    )
    for email in datasite:
        console.print(f"  {email}  node id {node_id_for(email)}")


# -- run ---------------------------------------------------------------------------------


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
    app, config = _load(app_dir, run_config)
    keep_freed_memory()
    fed = app.federation
    encrypted = resolve_encrypt(encrypt, app)
    agg = aggregator or fed.aggregator
    sites = tuple(datasite or fed.datasites)
    root = root or fed.root
    if not root:
        raise _fail("no --root given and [tool.fedbox] has no root")
    store = _StoreArgs(
        root,
        store_options(root, storage_option, fed.storage_options),
        *poll_bounds(poll_interval, max_poll_interval),
    )
    if agg is None:
        raise _fail(f"no aggregator: run `fedbox bootstrap {app_dir}` or pass --aggregator")
    if email == agg:
        if not sites:
            raise _fail("no datasites: run `fedbox bootstrap` or pass --datasite")
        _quiet_flower()
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
        raise _fail(f"{email} is neither the aggregator ({agg}) nor a datasite of this app")
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
                raise _fail(str(exc), EXIT_FAILED) from exc
            try:
                _check_store(box)
            except FedboxError as exc:
                _close(box)
                raise _fail(str(exc), EXIT_FAILED) from exc
        return box


def _close(box: Box) -> None:
    box.close()
    box.store.close()


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

        with _sigterm_as_interrupt():
            outcome = _run_with_progress(app.project, len(sites), body, tally)
        return _report(outcome, tally)
    except FedboxError as exc:
        print_error(exc, err_console)
        return EXIT_FAILED
    finally:
        _close(box)


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
    with _sigterm_as_interrupt():
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
            print_error(exc, err_console)
            return EXIT_FAILED
        finally:
            _close(box)
    console.print(
        f"fedbox run: {email} stopped by the aggregator after {node.runner.handled} messages",
        highlight=False,
    )
    return EXIT_OK


# -- registration ------------------------------------------------------------------------

COMMANDS: dict[str, Callable[..., None]] = {
    "simulate": simulate,
    "bootstrap": bootstrap,
    "run": run,
}


def register(app: typer.Typer) -> None:
    """Add ``simulate``, ``bootstrap`` and ``run`` to the main ``fedbox`` command."""
    for name, fn in COMMANDS.items():
        app.command(name)(fn)


for _name, _fn in COMMANDS.items():
    fl_app.command(_name)(_fn)


@fl_app.callback()
def _configure(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
) -> None:
    """Logging for this module's own entry point (the main command configures its own)."""
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True))],
    )


if __name__ == "__main__":
    fl_app()
