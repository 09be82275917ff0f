"""A local federation over one store (a folder or a URL): who takes part, where things go, and
hosting many virtual clients in one process.

The CLI turns a :class:`SimulationPlan` into processes (one per client) or, with
``--inprocess``, into :class:`InProcessClients`; either way every message goes
through files exactly as in a real deployment.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fedbox.crypto import Identity, TrustStore
from fedbox.datasite.workspace import Workspace, fedbox_home
from fedbox.fl.config import AppConfig, AppConfigError, check_node_ids
from fedbox.fl.node_config import (
    NodeConfigEntry,
    check_targets,
    node_config_for,
    node_config_overrides,
    parse_node_config,
)
from fedbox.store.registry import redact_url, url_scheme

if TYPE_CHECKING:
    from flwr.app import UserConfig
    from flwr.clientapp import ClientApp

    from fedbox.rpc import Box
    from fedbox.rpc.shared import SharedServing

# Planning a simulation and introducing its participants need neither Flower nor
# fedbox.rpc: ``fedbox simulate`` does both before it starts its client processes, and
# imports those (a second's work on a small machine) while the clients start (issue 20).

__all__ = [
    "DEFAULT_AGGREGATOR",
    "InProcessClients",
    "SimulationPlan",
    "default_app_name",
    "display_root",
    "introduce_participants",
    "plan_simulation",
    "resolve_encrypt",
    "sim_email",
]

logger = logging.getLogger(__name__)

DEFAULT_AGGREGATOR = "aggregator@sim.fedbox"
SETUP_THREADS = 16
"""Participants set up at once: making keys, databases and folders mostly waits on the
disk (fsync, file creation), so a thousand virtual clients start in a fraction of the
time one after the other takes (issue 20)."""

SHARED_THREADS = 4
"""Handler threads for all the in-process virtual clients together: their ClientApps
share the GIL anyway, and a thread each spent more time switching than working."""

_T = TypeVar("_T")
_R = TypeVar("_R")


def _for_each(fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``[fn(item) for item in items]``, run on :data:`SETUP_THREADS` threads."""
    items = list(items)
    if len(items) < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(min(SETUP_THREADS, len(items)), "fedbox-setup") as pool:
        return list(pool.map(fn, items))


def display_root(root: str | Path) -> str:
    """``root`` as it may be printed or logged: a URL loses its password."""
    return redact_url(root)


def _remote_state_root(url: str) -> Path:
    """Where a simulation over ``url`` keeps its participants' private state.

    One fixed place per URL, so a second run over the same store reuses the identities
    (and keys) the first one published there, as a local ``--root`` does with its
    ``-state`` sibling; fresh keys would race the stale ``did.json`` files in the store.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", display_root(url)).strip("_")[:60]
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:10]
    return fedbox_home() / "simulate" / f"{safe}-{digest}"


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
    store_root: str
    """A folder path, or a store URL (``s3://...``, ``webdav://...``, ``sftp://...``)."""
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
    temp_dir: Path | None = None
    """The temporary folder holding store and state when ``keep`` is False."""
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    """Options for a URL root's backend, already merged (config, environment, flags)."""
    poll_interval: float | None = None
    max_poll_interval: float | None = None
    chunk_threshold: int | None = None
    """Bodies above this many bytes travel as chunk blobs (None: ``connect``'s default)."""
    chunk_size: int | None = None
    node_config_args: tuple[str, ...] = ()
    """``--node-config`` values as given (client processes get them again)."""
    node_config_entries: tuple[NodeConfigEntry, ...] = ()

    @property
    def remote(self) -> bool:
        """The store is a URL (anything but a folder or ``file://``)."""
        return url_scheme(self.store_root) not in (None, "file")

    def connect(
        self, email: str, *, handler_threads: int = 8, shared: SharedServing | None = None
    ) -> Box:
        """``email``'s box on the plan's store, with its options and polling bounds.

        Without fsync: a simulation's store is throwaway (or kept only for inspection)
        and need not survive a power cut, and at hundreds of virtual clients the fsyncs
        are most of a round's time. A killed process loses nothing either way.
        """
        from fedbox.rpc import connect

        return connect(
            self.store_root,
            email,
            state_dir=self.state_dir(email),
            encrypt=self.encrypt,
            storage_options=self.storage_options,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            fsync=False,
            handler_threads=handler_threads,
            chunk_threshold=self.chunk_threshold,
            chunk_size=self.chunk_size,
            shared=shared,
        )

    def shared_serving(self, threads: int) -> SharedServing | None:
        """One watcher and ``threads`` handler threads for many boxes of this plan in one
        process; None on a remote store, where each identity sees (and may list) only
        what it is allowed to, so one watcher cannot serve them all."""
        from fedbox.rpc.shared import SharedServing
        from fedbox.store.registry import open_store

        if self.remote:
            return None
        store = open_store(self.store_root, poll_interval=self.poll_interval, fsync=False)
        return SharedServing(store, threads=threads, readers=self.datasites)

    def state_dir(self, email: str) -> Path:
        return self.state_root / email

    def node_config(self, index: int) -> UserConfig:
        """fedbox's keys for datasite ``index``, with its ``--node-config`` over them."""
        own = node_config_overrides(
            self.node_config_entries, index=index, email=self.datasites[index]
        )
        return {**node_config_for(index, len(self.datasites), self.data_paths[index]), **own}


def plan_simulation(
    app: AppConfig,
    run_config: UserConfig,
    *,
    clients: int | None = None,
    root: str | Path | None = None,
    data: list[str] | tuple[str, ...] = (),
    timeout: float | None = None,
    encrypt: bool | None = None,
    storage_options: Mapping[str, Any] | None = None,
    poll_interval: float | None = None,
    max_poll_interval: float | None = None,
    chunk_threshold: int | None = None,
    chunk_size: int | None = None,
    node_config: list[str] | tuple[str, ...] = (),
) -> SimulationPlan:
    """Decide participants and folders; AppConfigError explains any conflict.

    Datasites are ``[tool.fedbox].datasites`` when the app names them, otherwise
    ``client-{i}@sim.fedbox``. One ``--data`` dir is shared by all clients; several
    must match the number of clients (one each).

    ``root`` is a folder (state goes beside it, in ``{root}-state``), a store URL
    (state under ``$FEDBOX_HOME/simulate/``), or None for a temporary folder removed at
    the end. ``storage_options`` are the URL backend's, already merged. ``node_config``
    holds ``--node-config`` values (:mod:`fedbox.fl.node_config`).
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
    node_config_entries = parse_node_config(node_config)
    check_targets(node_config_entries, datasites)
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
    scheme = None if root is None else url_scheme(str(root))
    if scheme == "memory":
        raise AppConfigError(
            "memory:// stores live inside one store object and cannot carry a simulation; "
            "use a folder, or a shared store URL"
        )
    temp_dir: Path | None = None
    if root is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="fedbox-sim-"))
        store_root, state_root, keep = str(temp_dir / "store"), temp_dir / "state", False
    elif scheme in (None, "file"):
        folder = Path(str(root)).expanduser().resolve()
        store_root, state_root, keep = str(folder), folder.with_name(folder.name + "-state"), True
    else:
        store_root, state_root, keep = str(root), _remote_state_root(str(root)), True
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
        temp_dir=temp_dir,
        storage_options=dict(storage_options or {}),
        poll_interval=poll_interval,
        max_poll_interval=max_poll_interval,
        chunk_threshold=chunk_threshold,
        chunk_size=chunk_size,
        node_config_args=tuple(node_config),
        node_config_entries=node_config_entries,
    )


def introduce_participants(plan: SimulationPlan) -> None:
    """Pin every participant's key for those it talks to, from their state dirs.

    A simulation creates all its identities on this machine, so it knows their true
    keys without asking the store: the aggregator pins each datasite's and each datasite
    pins the aggregator's before anyone connects. Nobody then meets a stranger, so no
    first-contact warning is logged and nothing depends on who wrote a ``did.json`` first
    (a shared URL root could be written by others). Keys are created here if missing,
    as connecting would. Nothing to do without encryption.
    """
    if not plan.encrypt:
        return
    emails = (plan.aggregator, *plan.datasites)

    def fingerprint(email: str) -> str:
        state = Workspace.for_email(email, plan.state_dir(email)).ensure().state_dir
        return Identity.load_or_create(state, email).public_bundle().fingerprint

    prints = dict(zip(emails, _for_each(fingerprint, emails), strict=True))
    TrustStore(plan.state_dir(plan.aggregator)).trust_all(
        {site: prints[site] for site in plan.datasites}
    )
    aggregator = {plan.aggregator: prints[plan.aggregator]}
    _for_each(lambda site: TrustStore(plan.state_dir(site)).trust_all(aggregator), plan.datasites)


class InProcessClients:
    """Every datasite of a plan as a virtual client in this process.

    Each keeps its own identity, state dir and Context files, and talks only
    through the store, so the run is the same as with processes, minus the
    processes. On a folder they share one watcher and ``handler_threads`` handler
    threads (:class:`~fedbox.rpc.shared.SharedServing`); on a remote store each has
    its own watcher and ``handler_threads`` threads. ClientApps share the GIL.
    """

    def __init__(self, plan: SimulationPlan, handler_threads: int | None = None) -> None:
        from fedbox.fl.client import ClientNode, client_app_loader

        self.nodes: list[ClientNode] = []
        self._boxes: list[Box] = []
        self.shared = plan.shared_serving(handler_threads or SHARED_THREADS)
        threads = handler_threads or 1
        load = client_app_loader(plan.app)
        cached: list[ClientApp] = []
        lock = threading.Lock()

        def load_once() -> ClientApp:  # one ClientApp for all virtual clients, as Flower does
            with lock:
                if not cached:
                    cached.append(load())
                return cached[0]

        def start(index: int) -> ClientNode:
            box = plan.connect(plan.datasites[index], handler_threads=threads, shared=self.shared)
            with lock:
                self._boxes.append(box)  # closed by close(), however the start ends
            node = ClientNode(
                box,
                plan.app_name,
                load_once,
                plan.node_config(index),
                default_run_config=plan.run_config,
                fsync=False,
            )
            return node.start()

        try:  # several at once: starting one mostly waits on the disk
            self.nodes = _for_each(start, range(len(plan.datasites)))
        except BaseException:
            self.close()
            raise

    def stopped(self) -> list[str]:
        return [n.box.email for n in self.nodes if n.stopped.is_set()]

    def close(self) -> None:
        for box in self._boxes:
            try:
                box.close()
            except Exception:
                logger.exception("closing %s failed", box)
        if self.shared is not None:
            self.shared.close()
