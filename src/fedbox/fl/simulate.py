"""A local federation over one folder: who takes part, where things go, and
hosting many virtual clients in one process.

The CLI turns a :class:`SimulationPlan` into processes (one per client) or, with
``--inprocess``, into :class:`InProcessClients`; either way every message goes
through files exactly as in a real deployment.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flwr.app import UserConfig
from flwr.clientapp import ClientApp

from fedbox.datasite.workspace import Workspace
from fedbox.fl.client import ClientNode, client_app_loader, node_config_for
from fedbox.fl.config import AppConfig, AppConfigError, check_node_ids
from fedbox.rpc import Box
from fedbox.store import LocalStore

__all__ = [
    "DEFAULT_AGGREGATOR",
    "InProcessClients",
    "SimulationPlan",
    "connect_local",
    "default_app_name",
    "plan_simulation",
    "resolve_encrypt",
    "sim_email",
]

logger = logging.getLogger(__name__)

DEFAULT_AGGREGATOR = "aggregator@sim.fedbox"


def connect_local(
    root: str | Path,
    email: str,
    state_dir: str | Path | None,
    *,
    durable: bool = True,
    handler_threads: int = 8,
    encrypt: bool = False,
) -> Box:
    """``fedbox.connect`` with a choice of durability.

    ``durable=False`` skips fsync on message files: a simulation's folder is thrown
    away and need not survive a power cut, and at hundreds of virtual clients the
    fsyncs are most of a round's time. A killed process loses nothing either way.
    """
    store = LocalStore(Path(root), fsync=durable)
    workspace = Workspace.for_email(email, state_dir)
    return Box(store, workspace, handler_threads=handler_threads, encrypt=encrypt)


def resolve_encrypt(choice: bool | None, app: AppConfig) -> bool:
    """The flag, else ``[tool.fedbox].encrypt``, else on: FL runs encrypt unless told not to."""
    if choice is not None:
        return choice
    return True if app.federation.encrypt is None else app.federation.encrypt


def sim_email(index: int) -> str:
    return f"client-{index}@sim.fedbox"


def default_app_name(aggregator: str, project: str, now: float | None = None) -> str:
    """``{aggregator}_{project}_{unix_time}``: a fresh app, so runs never mix."""
    return f"{aggregator}_{project}_{int(time.time() if now is None else now)}"


@dataclass(frozen=True, slots=True)
class SimulationPlan:
    """Everything a simulation needs, decided before anything starts."""

    app: AppConfig
    run_config: UserConfig
    store_root: Path
    state_root: Path
    """Parent of every participant's private state dir; never inside the store."""
    aggregator: str
    datasites: tuple[str, ...]
    app_name: str
    data_paths: tuple[str | None, ...]
    timeout: float | None
    encrypt: bool
    """End-to-end encryption, as in a deployment (``[tool.fedbox].encrypt``, default on)."""
    keep: bool
    """The user chose the folder (``--root``): leave it for inspection."""

    def state_dir(self, email: str) -> Path:
        return self.state_root / email

    def node_config(self, index: int) -> UserConfig:
        return node_config_for(index, len(self.datasites), self.data_paths[index])


def plan_simulation(
    app: AppConfig,
    run_config: UserConfig,
    *,
    clients: int | None = None,
    root: str | Path | None = None,
    data: list[str] | tuple[str, ...] = (),
    timeout: float | None = None,
    encrypt: bool | None = None,
) -> SimulationPlan:
    """Decide participants and folders; AppConfigError explains any conflict.

    Datasites are ``[tool.fedbox].datasites`` when the app names them, otherwise
    ``client-{i}@sim.fedbox``. One ``--data`` dir is shared by all clients; several
    must match the number of clients (one each).
    """
    named = app.federation.datasites
    if named:
        if clients is not None and clients != len(named):
            raise AppConfigError(
                f"--clients {clients} contradicts the {len(named)} datasites named in "
                f"[{app.federation_source}]; drop --clients or the datasites list"
            )
        datasites = tuple(named)
    else:
        count = 3 if clients is None else clients
        if count < 1:
            raise AppConfigError("--clients must be at least 1")
        datasites = tuple(sim_email(i) for i in range(count))
    aggregator = app.federation.aggregator or DEFAULT_AGGREGATOR
    if aggregator in datasites:
        raise AppConfigError(f"{aggregator} is both the aggregator and a datasite")
    check_node_ids(datasites)
    if len(data) not in (0, 1, len(datasites)):
        raise AppConfigError(
            f"give one --data dir for all clients or one per client ({len(datasites)}), "
            f"not {len(data)}"
        )
    paths: tuple[str | None, ...]
    if not data:
        paths = (None,) * len(datasites)
    elif len(data) == 1:
        paths = (str(data[0]),) * len(datasites)
    else:
        paths = tuple(str(d) for d in data)
    for p in {p for p in paths if p}:
        if not Path(p).is_dir():
            raise AppConfigError(f"--data {p} is not a directory")
    if root is None:
        base = Path(tempfile.mkdtemp(prefix="fedbox-sim-"))
        store_root, state_root, keep = base / "store", base / "state", False
    else:
        store_root = Path(root).expanduser().resolve()
        state_root = store_root.with_name(store_root.name + "-state")
        keep = True
    return SimulationPlan(
        app=app,
        run_config=dict(run_config),
        store_root=store_root,
        state_root=state_root,
        aggregator=aggregator,
        datasites=datasites,
        app_name=app.federation.app_name or default_app_name(aggregator, app.project),
        data_paths=paths,
        timeout=timeout,
        encrypt=resolve_encrypt(encrypt, app),
        keep=keep,
    )


class InProcessClients:
    """Every datasite of a plan as a virtual client in this process.

    Each keeps its own identity, state dir and Context files, and talks only
    through the store, so the run is the same as with processes, minus the
    processes. Handlers run on a few threads per client; ClientApps share the GIL.
    """

    def __init__(self, plan: SimulationPlan, handler_threads: int = 1) -> None:
        self.nodes: list[ClientNode] = []
        load = client_app_loader(plan.app)
        cached: list[ClientApp] = []
        lock = threading.Lock()

        def load_once() -> ClientApp:  # one ClientApp for all virtual clients, as Flower does
            with lock:
                if not cached:
                    cached.append(load())
                return cached[0]

        try:
            for index, email in enumerate(plan.datasites):
                box = connect_local(
                    plan.store_root,
                    email,
                    plan.state_dir(email),
                    durable=False,
                    handler_threads=handler_threads,
                    encrypt=plan.encrypt,
                )
                node = ClientNode(
                    box,
                    plan.app_name,
                    load_once,
                    plan.node_config(index),
                    default_run_config=plan.run_config,
                    fsync=False,
                )
                self.nodes.append(node.start())
        except BaseException:
            self.close()
            raise

    def stopped(self) -> list[str]:
        return [n.box.email for n in self.nodes if n.stopped.is_set()]

    def close(self) -> None:
        for node in self.nodes:
            try:
                node.box.close()
            except Exception:
                logger.exception("closing %s failed", node)
