"""``fedbox simulate``: a whole federation on one machine, talking only through a store.

The aggregator runs in this process; each client is a process of its own running
``python -m fedbox.cli.fl_commands run ...``'s command, forked from this one where that
is safe (:mod:`fedbox.cli.client_fork`), else started as that command line. With
``--inprocess`` every client is a virtual client in one process forked for them all
(else in this process). Either way a simulation exercises the same code paths and the
same store traffic as a deployment. Starting, configuring and reaping those processes
is this module's job.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fedbox.cli.dev_hub import DevHub, log_in_to_dev_hub
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
)
from fedbox.cli.lifeline import Lifeline, die_with_parent
from fedbox.cli.logsetup import PLAIN_FORMAT, adopt_flower_logger, configure_logging
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
from fedbox.datasite.workspace import fedbox_home
from fedbox.errors import FedboxError
from fedbox.fl.config import AppConfig, AppConfigError
from fedbox.fl.memory import keep_freed_memory
from fedbox.fl.record import RunRecord
from fedbox.fl.syft_compat import export_output_dir
from fedbox.fl.tally import RunTally
from fedbox.fl.threads import thread_env
from fedbox.store import ENV_STORAGE_OPTIONS
from fedbox.store.registry import url_scheme

if TYPE_CHECKING:
    from typing import TypeAlias

    from fedbox.cli.client_fork import ForkedProcess
    from fedbox.fl.events import EventCallback
    from fedbox.fl.server import ServerOutcome
    from fedbox.fl.simulate import InProcessClients, SimulationPlan
    from fedbox.rpc import Box

    ClientProcess: TypeAlias = subprocess.Popen[bytes] | ForkedProcess
# fedbox.fl.simulate, .server and .runner import Flower, and fedbox.rpc its crypto: they
# are imported where they are used, so the ``fedbox`` command starts fast.

__all__ = ["client_command", "client_env", "simulate"]

CLIENT_MODULE = "fedbox.cli.fl_commands"
"""What a client process runs with ``python -m``: the Flower commands on their own,
independent of how the main ``fedbox`` command is assembled."""


def client_command(
    plan: SimulationPlan, index: int, email: str, *, lifeline_fd: int | None = None
) -> list[str]:
    """The command line of one client process. It shows in ``ps``, so nothing secret
    goes here: storage options, and a root URL with a password in it, travel in the
    environment (:func:`client_env`). With ``lifeline_fd`` (a :class:`Lifeline`'s
    end, passed to the process) the client ends when this process does."""
    return [sys.executable, "-m", CLIENT_MODULE, *client_args(plan, index, email, lifeline_fd)]


def client_args(
    plan: SimulationPlan, index: int, email: str, lifeline_fd: int | None = None
) -> list[str]:
    """:data:`CLIENT_MODULE`'s arguments for client ``index`` (see :func:`client_command`)."""
    root = [] if _root_in_env(plan) else ["--root", plan.store_root]
    args = [
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
    optional = {
        "--lifeline": lifeline_fd,
        "--data": plan.data_paths[index],
        "--poll-interval": plan.poll_interval,
        "--max-poll-interval": plan.max_poll_interval,
        "--chunk-threshold": plan.chunk_threshold,
        "--chunk-size": plan.chunk_size,
    }
    for flag, value in optional.items():
        if value is not None and value != "":
            args += [flag, value if isinstance(value, str) else repr(value)]
    return args + _node_config_flags(plan)


def _node_config_flags(plan: SimulationPlan) -> list[str]:
    """Every ``--node-config`` again: the client picks what is aimed at it."""
    return [arg for value in plan.node_config_args for arg in ("--node-config", value)]


def _root_in_env(plan: SimulationPlan) -> bool:
    from fedbox.fl.simulate import display_root

    return display_root(plan.store_root) != plan.store_root  # a URL with a password


def client_env(plan: SimulationPlan) -> dict[str, str]:
    """The clients' environment: the store's merged options as ``$FEDBOX_STORAGE_OPTIONS``
    (a section for the root's scheme, which wins over the app's [tool.fedbox] options
    when a client reads them again), the root itself if it carries a password, and each
    client's fair share of the cores (:mod:`fedbox.fl.threads`) unless the user set it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.update(thread_env(len(plan.datasites), env))
    scheme = url_scheme(plan.store_root)
    if plan.remote and scheme is not None:
        try:
            env[ENV_STORAGE_OPTIONS] = json.dumps({scheme: dict(plan.storage_options)})
        except TypeError as exc:
            raise fail(f"storage options must be JSON values to reach the clients: {exc}") from exc
    if _root_in_env(plan):
        env[ENV_ROOT] = plan.store_root
    return env


def _start_processes(plan: SimulationPlan, lifeline: Lifeline) -> dict[str, ClientProcess]:
    """One process per client, each in its own session so a terminal Ctrl-C reaches only
    the aggregator, which then stops them through the store (the behaviour under test).
    Each holds the ``lifeline``, so none outlives this process, however it ends.

    Forked from this process once it has imported what they need (which it needs too),
    so none of them spends most of a second importing it again; started as new
    interpreters when forking is unsafe (:func:`~fedbox.cli.client_fork.can_fork`)."""
    from fedbox.cli import client_fork

    forking = client_fork.can_fork()
    if forking:
        client_fork.preload()
    procs: dict[str, ClientProcess] = {}
    env = client_env(plan)
    for index, email in enumerate(plan.datasites):
        state = plan.state_dir(email)
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        args = client_args(plan, index, email, lifeline.child_fd)
        if forking:
            procs[email] = client_fork.fork_client(args, env, state / CLIENT_LOG, lifeline)
            continue
        with open(state / CLIENT_LOG, "ab") as log:
            procs[email] = subprocess.Popen(
                [sys.executable, "-m", CLIENT_MODULE, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                pass_fds=(lifeline.child_fd,),
            )
    return procs


def _reap(procs: dict[str, ClientProcess], grace: float) -> dict[str, int | None]:
    """Give the clients ``grace`` seconds to stop on the aggregator's word, then end
    them, so no client outlives the command; their exit codes, for the report."""
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


CLIENT_LOG = "client.log"
IN_PROCESS_LOG = "clients.log"
"""The log of ``--inprocess`` clients, in the state root: one file for all of them."""


def _client_logs(plan: SimulationPlan) -> list[tuple[str, Path]]:
    """(name to keep it under, where it is) of every client log a simulation writes."""
    logs = [(f"{email}.log", plan.state_dir(email) / CLIENT_LOG) for email in plan.datasites]
    return [*logs, (IN_PROCESS_LOG, plan.state_root / IN_PROCESS_LOG)]


def _discard_temp(plan: SimulationPlan, *, keep_logs: bool = False) -> Path | None:
    """Remove a temporary folder. With ``keep_logs`` (a failed run) the client logs are
    moved out first, to a folder of their own that survives: where they are now."""
    if plan.keep or plan.temp_dir is None:
        return None
    kept = None
    logs = [(name, log) for name, log in _client_logs(plan) if log.exists()]
    if keep_logs and logs:
        kept = Path(tempfile.mkdtemp(prefix="fedbox-sim-logs-"))
        for name, log in logs:
            shutil.move(log, kept / name)
    shutil.rmtree(plan.temp_dir, ignore_errors=True)
    return kept


def _fork_client_host(plan: SimulationPlan, lifeline: Lifeline) -> ClientProcess | None:
    """``--inprocess`` clients in one process of their own, forked from this one, or None
    where forking is unsafe (:func:`~fedbox.cli.client_fork.can_fork`): then they live
    in this process. Apart, the ServerApp and the ClientApps each have a core and a GIL
    of their own; together, at a thousand clients, the threads spent a third of the
    CPU switching between each other, and the process used barely one core (issue 20).
    The process logs to :data:`IN_PROCESS_LOG` and ends once every client has stopped.
    """
    from fedbox.cli import client_fork

    if not client_fork.can_fork():
        return None
    client_fork.preload()
    plan.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    host = functools.partial(_host_clients, plan, lifeline.child_fd)
    return client_fork.fork_child(host, plan.state_root / IN_PROCESS_LOG, lifeline)


def _host_clients(plan: SimulationPlan, lifeline_fd: int) -> None:
    """The forked client host's life: every datasite as a virtual client, until the
    aggregator has stopped them all (or this process's parent is gone)."""
    from fedbox.fl.simulate import InProcessClients

    die_with_parent(lifeline_fd)
    configure_logging(0)
    host = InProcessClients(plan)
    gc.freeze()  # the clients' long-lived objects: no full collection walks them again
    try:
        for node in host.nodes:
            node.wait()
    finally:
        host.close()


def _reap_client_host(host: ClientProcess, grace: float, code: int) -> int:
    """End the client host as :func:`_reap` ends client processes; a host that did not
    exit cleanly fails a run that had otherwise succeeded, and names its log (which
    :func:`_show_logs` then says where to find)."""
    exited = _reap({IN_PROCESS_LOG: host}, grace=grace)[IN_PROCESS_LOG]
    if exited == 0:
        return code
    console.print(
        f"[red]the virtual clients' process exited with code {exited}[/red] "
        f"(its log: {IN_PROCESS_LOG})",
        highlight=False,
    )
    return EXIT_FAILED if code == EXIT_OK else code


@contextmanager
def _in_process_log(plan: SimulationPlan) -> Iterator[None]:
    """In-process clients log to one file, as client processes do to theirs: a
    ClientApp's tracebacks land there, not among the progress lines (issue 12)."""
    from fedbox.fl import runner

    plan.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    handler = logging.FileHandler(plan.state_root / IN_PROCESS_LOG)
    handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    runner_log = logging.getLogger(runner.__name__)
    runner_log.addHandler(handler)
    runner_log.propagate = False
    try:
        yield
    finally:
        runner_log.removeHandler(handler)
        runner_log.propagate = True
        handler.close()


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
        bool,
        typer.Option(
            "--inprocess",
            help="Host all clients as virtual clients in one process (forked beside this "
            "one where that is safe, else in this one), not a process each.",
        ),
    ] = False,
    stop_wait: Annotated[
        float,
        typer.Option(
            "--stop-wait",
            help="Seconds to wait for the clients to confirm the stop (a second Ctrl-C "
            "does not wait).",
        ),
    ] = 15.0,
    encrypt: EncryptOpt = None,
    storage_option: StorageOpt = None,
    poll_interval: PollOpt = None,
    max_poll_interval: MaxPollOpt = None,
    chunk_threshold: ChunkThresholdOpt = None,
    chunk_size: ChunkSizeOpt = None,
    node_config: NodeConfigOpt = None,
    min_datasites: MinDatasitesOpt = None,
    join_timeout: JoinTimeoutOpt = None,
    json_progress: JsonProgressOpt = False,
    hub: Annotated[
        bool,
        typer.Option(
            "--hub",
            help="Talk through a temporary hub on 127.0.0.1 that every participant logs in "
            "to; it keeps its data in the --root folder \\[default: a temporary folder].",
        ),
    ] = False,
    fresh: FreshOpt = False,
) -> None:
    """Run a Flower app on a local federation that talks only through one store.

    The store is a temporary folder unless --root names a folder or a URL: then every
    message goes through that bucket, WebDAV share or SFTP server, as in a deployment.
    With --hub it is a hub of its own, started for the run and stopped after it.
    Participants are introduced to each other (their keys pinned) before they start.
    With --root, a simulation started again after a crash resumes its unfinished run.
    """
    from fedbox.fl.simulate import plan_simulation

    app, config = load_app(app_dir, run_config)
    keep_freed_memory()
    poll_interval, max_poll_interval = poll_bounds(poll_interval, max_poll_interval)
    if not root and storage_option:
        raise fail("--storage-option needs a URL --root")
    if hub and root and url_scheme(root) not in (None, "file"):
        raise fail("--hub starts its own hub: give --root a folder for its data, or no --root")
    try:
        plan = plan_simulation(
            app,
            config,
            clients=clients,
            root=root or None,
            data=[str(d) for d in data or []],
            timeout=timeout,
            encrypt=encrypt,
            storage_options=_storage_options(app, root, storage_option),
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            chunk_threshold=chunk_threshold,
            chunk_size=chunk_size,
            node_config=node_config or (),
        )
    except AppConfigError as exc:
        raise fail(str(exc)) from exc
    try:
        check_min_datasites(min_datasites, len(plan.datasites))
    except typer.Exit:
        _discard_temp(plan)
        raise
    record = open_record(
        plan.state_dir(plan.aggregator),
        app,
        plan.aggregator,
        plan.datasites,
        plan.run_config,
        fixed_name=app.federation.app_name,
        new_name=plan.app_name,
        fresh=fresh,
        command="simulate",
    )
    plan = dataclasses.replace(plan, app_name=record.info.name)
    try:
        dev_hub = None
        if hub:
            plan, dev_hub = _on_hub(plan)
        elif url_scheme(plan.store_root) in ("hub", "hubs"):
            _log_in_everyone(plan)
        _announce(plan, inprocess)
        _export_output_dir(plan)
        _introduce(plan, dev_hub)
        watch = _Watch(progress_mode(json_progress), min_datasites, join_timeout, record)
        code = _run(plan, watch, inprocess=inprocess, stop_wait=stop_wait, hub=dev_hub)
    finally:
        record.close()
    raise typer.Exit(code)


def _on_hub(plan: SimulationPlan) -> tuple[SimulationPlan, DevHub]:
    """The plan routed through a hub started for it, which keeps its data where the
    plan's folder would be; every participant logged in (tokens in its state dir)."""
    try:
        hub = DevHub(Path(plan.store_root))
    except FedboxError as exc:
        _discard_temp(plan)
        raise fail(str(exc), EXIT_FAILED) from exc
    try:
        for email in (plan.aggregator, *plan.datasites):
            hub.log_in(email, plan.state_dir(email))
    except BaseException as exc:
        hub.stop()
        _discard_temp(plan)
        if isinstance(exc, FedboxError):
            raise fail(str(exc), EXIT_FAILED) from exc
        raise
    return dataclasses.replace(plan, store_root=hub.url), hub


def _log_in_everyone(plan: SimulationPlan) -> None:
    """A ``hub://`` --root (a running ``--dev`` hub, or several processes of one):
    every participant logs in to it, as with --hub."""
    try:
        for email in (plan.aggregator, *plan.datasites):
            log_in_to_dev_hub(plan.store_root, email, plan.state_dir(email))
    except (FedboxError, OSError) as exc:
        _discard_temp(plan)
        raise fail(f"cannot log the participants in to {plan.store_root}: {exc}", 1) from exc


@dataclass(frozen=True, slots=True)
class _Watch:
    """How the run is waited for and shown: the progress mode and the datasites needed."""

    mode: ProgressMode
    min_datasites: int | None
    join_timeout: float | None
    record: RunRecord


def _storage_options(app: AppConfig, root: str | None, flags: list[str] | None) -> dict[str, Any]:
    """A URL root's merged options (config, environment, flags); none for a temp folder."""
    return store_options(root, flags, app.federation.storage_options) if root else {}


def _announce(plan: SimulationPlan, inprocess: bool) -> None:
    from fedbox.fl.simulate import display_root

    console.print(
        f"fedbox simulate: {plan.app.fab_id} with {len(plan.datasites)} "
        f"{'in-process' if inprocess else 'process'} clients"
        f"{'' if plan.encrypt else ' (encryption off)'}\n"
        f"  app    {plan.app_name}\n"
        f"  {'store ' if plan.remote else 'folder'} {display_root(plan.store_root)}\n"
        f"  state  {plan.state_root}",
        highlight=False,
    )


def _export_output_dir(plan: SimulationPlan) -> None:
    """``$OUTPUT_DIR`` for the apps (unless set): ``$FEDBOX_HOME/output/{app name}``,
    outside the simulation's folders, so checkpoints outlive a temporary store."""
    folder = export_output_dir(fedbox_home() / "output" / plan.app_name)
    console.print(f"  output {folder}", highlight=False)


def _introduce(plan: SimulationPlan, hub: DevHub | None) -> None:
    """The store made and the participants introduced (their keys made and pinned), so
    the clients can start; any failure stops the ``hub``, removes a temporary folder and
    ends the command."""
    from fedbox.fl.simulate import introduce_participants

    try:
        if not plan.remote:
            Path(plan.store_root).mkdir(parents=True, exist_ok=True)
        introduce_participants(plan)
    except (FedboxError, ValueError) as exc:
        if hub is not None:
            hub.stop()
        _discard_temp(plan)
        raise fail(str(exc), EXIT_FAILED) from exc


def _connect_aggregator(plan: SimulationPlan) -> Box:
    """The aggregator connected and the store checked once; a failure ends the command
    with one line (whoever called stops what was started)."""
    try:
        with refusals_reported_here():
            box = plan.connect(plan.aggregator)
            try:
                check_store(box)
            except BaseException:
                box.close()
                raise
    except (FedboxError, ValueError) as exc:
        raise fail(str(exc), EXIT_FAILED) from exc
    return box


def _run(
    plan: SimulationPlan,
    watch: _Watch,
    *,
    inprocess: bool,
    stop_wait: float,
    hub: DevHub | None = None,
) -> int:
    """Start the clients, connect the aggregator, run the ServerApp with the live view,
    reap and report; the exit code. Everything it started is stopped, the box closed
    and the ``hub`` stopped however it ends.

    Client processes start first: each needs a moment (most of a second when it is
    not forked and imports everything itself) before it can answer the run's
    invitation, and this process connects and loads the ServerApp meanwhile (issue 20)."""
    tally = RunTally(plan.datasites)
    host: InProcessClients | None = None
    host_process: ClientProcess | None = None
    procs: dict[str, ClientProcess] = {}
    exit_codes: dict[str, int | None] | None = None
    code = EXIT_FAILED
    lifeline = Lifeline()
    stack = ExitStack()
    box: Box | None = None
    try:
        if not inprocess:
            procs = _start_processes(plan, lifeline)
        else:
            host_process = _fork_client_host(plan, lifeline)
        box = _connect_aggregator(plan)
        if inprocess and host_process is None:
            from fedbox.fl.simulate import InProcessClients

            stack.enter_context(_in_process_log(plan))
            host = InProcessClients(plan)
        aggregator = box

        def serve(callback: EventCallback) -> ServerOutcome:
            from fedbox.fl.server import run_server  # after the clients started

            adopt_flower_logger()  # Flower was imported just now, with its own handler
            return run_server(
                aggregator,
                plan.app,
                plan.app_name,
                plan.datasites,
                plan.run_config,
                timeout=plan.timeout,
                callback=callback,
                stop_wait=stop_wait,
                min_datasites=watch.min_datasites,
                join_timeout=watch.join_timeout,
                record=watch.record,
            )

        outcome = run_with_progress(plan.app.project, len(plan.datasites), serve, tally, watch.mode)
        if procs:
            exit_codes = _reap(procs, grace=stop_wait)
        code = report_outcome(outcome, tally, exit_codes, watch.mode)
        if host_process is not None:
            code = _reap_client_host(host_process, stop_wait, code)
        return code
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        return code
    except FedboxError as exc:  # the store failed outside the ServerApp (e.g. the stop)
        print_error(exc)
        return EXIT_FAILED
    finally:
        if procs and exit_codes is None:
            _reap(procs, grace=0)
        if host_process is not None and host_process.poll() is None:
            _reap({IN_PROCESS_LOG: host_process}, grace=0)
        lifeline.close()
        if host is not None:
            host.close()
        if box is not None:
            box.close()
        if hub is not None:
            hub.stop()
        stack.close()
        _show_logs(plan, inprocess, failed=code != EXIT_OK or _any_errors(tally))


def _any_errors(tally: RunTally) -> bool:
    with tally.lock:
        return any(n.errors for n in tally.nodes.values())


def _show_logs(plan: SimulationPlan, inprocess: bool, *, failed: bool) -> None:
    """Say where the client logs are; a temporary folder goes, but the logs of a run
    that failed (or had errors) are kept, since that is where the tracebacks are."""
    kept = _discard_temp(plan, keep_logs=failed)
    if kept is not None:
        console.print(f"client logs kept: {kept}/*.log", highlight=False)
    elif plan.keep:
        where = IN_PROCESS_LOG if inprocess else f"*/{CLIENT_LOG}"
        console.print(f"client logs: {plan.state_root}/{where}", highlight=False)
