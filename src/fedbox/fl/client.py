"""Serving a ClientApp for one identity: the fedbox counterpart of a SuperNode.

:class:`ClientNode` registers a handler on endpoint ``messages`` of the run's app
and hands every request to a :class:`~fedbox.fl.runner.NodeRunner`. It ends when
the aggregator's stop message arrives (or when its owner stops it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flwr.app import UserConfig
from flwr.clientapp import ClientApp
from flwr.clientapp.client_app import LoadClientAppError
from flwr.supercore.object_ref import load_app
from google.protobuf.message import DecodeError

from fedbox.fl.config import AppConfig, node_id_for
from fedbox.fl.contexts import ContextStore
from fedbox.fl.joining import ENDPOINT, JoinDesk
from fedbox.fl.node_config import DATA_DIR_ENV, export_data_dir, node_config_for
from fedbox.fl.runner import NodeRunner
from fedbox.fl.threads import limit_torch_threads
from fedbox.rpc import Box, Request, Response, Status
from fedbox.rpc.body import Body

__all__ = ["DATA_DIR_ENV", "ClientNode", "client_app_loader", "export_data_dir", "node_config_for"]

logger = logging.getLogger(__name__)


def client_app_loader(app_config: AppConfig) -> Callable[[], ClientApp]:
    """A loader for the app's ClientApp, called on the first message (as Flower does).

    Once the app is imported, a thread share that ``simulate`` chose reaches PyTorch
    too, if the app uses it (:func:`fedbox.fl.threads.limit_torch_threads`)."""

    def load() -> ClientApp:
        app = load_app(app_config.clientapp, LoadClientAppError, app_config.app_dir)
        if not isinstance(app, ClientApp):
            raise LoadClientAppError(
                f"{app_config.clientapp} is a {type(app).__name__}, not a flwr ClientApp"
            )
        limit_torch_threads()
        return app

    return load


class ClientNode:
    """One datasite serving a ClientApp on one run's app name.

    Its contexts live in ``{state_dir}/fl/{app_name}/`` so a restarted process picks
    up where it stopped; requests that arrived while it was down are its backlog.
    """

    def __init__(
        self,
        box: Box,
        app_name: str,
        load_client_app: Callable[[], ClientApp],
        node_config: UserConfig,
        *,
        default_run_config: UserConfig | None = None,
        endpoint: str = ENDPOINT,
        fsync: bool = True,
        desk: JoinDesk | None = None,
    ) -> None:
        """With a ``desk`` (already on ``endpoint`` of the app, answering invitations
        while this process loaded Flower) the node takes the run's messages from it."""
        self.box = box
        self.app = box.app(app_name)
        self.node_id = node_id_for(box.email)
        self.stopped = threading.Event()
        contexts = ContextStore(box.workspace.state_dir / "fl" / app_name, fsync=fsync)
        self.runner = NodeRunner(
            load_client_app, self.node_id, node_config, contexts, default_run_config
        )
        if desk is not None:
            desk.attach(self._on_message)
            return
        # Safe to run again after a crash: the Context is restored to before the message.
        self.app.on_request(endpoint, stream=True, rerun=True)(self._on_message)

    def __repr__(self) -> str:
        return f"<ClientNode {self.box.email} node {self.node_id} on {self.app.name}>"

    def _on_message(self, request: Request) -> Response | Body:
        body = request.payload if request.payload is not None else request.body
        try:
            outcome = self.runner.handle(body)
        except DecodeError as exc:
            logger.warning("%s: request %s is not a Flower message: %s", self, request.id, exc)
            return Response(body=f"not a Flower message: {exc}".encode(), status=Status.BAD_REQUEST)
        if outcome.stop:
            self.stopped.set()
        return outcome.body

    def start(self) -> ClientNode:
        """Serve in the background: the backlog first, then new requests."""
        self.app.start()
        logger.info("%s serving", self)
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the aggregator says stop; True if it did within ``timeout``."""
        return self.stopped.wait(timeout)

    def stop(self) -> None:
        """Stop serving; a reply being written (including the stop ack) finishes first."""
        self.app.stop()
