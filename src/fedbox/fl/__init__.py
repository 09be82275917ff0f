"""Flower over files (layer 8): FileGrid, the ClientApp runner, simulate/bootstrap/run.

``FileGrid`` is Flower's ``Grid`` on fedbox RPC (the ServerApp side); ``ClientNode``
serves a ClientApp for one identity (the SuperNode side); ``run_server`` runs a
ServerApp to the end and stops the datasites; ``fedbox.fl.simulate`` plans a local
federation; ``FedAvg`` is Flower's, averaging in place for large models. The CLI wires
these into ``fedbox simulate``, ``bootstrap`` and ``run``. ``submit_fl`` sends an app
to data owners as rds jobs and aggregates once enough approve (``fedbox job submit-fl``).

Every name is exported lazily (module ``__getattr__``): importing Flower takes about
half a second, and ``import fedbox.fl.record`` (or ``fedbox --help``) should not pay
it because this package's ``__init__`` runs first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedbox.errors import TooFewApprovals
    from fedbox.fl.client import ClientNode, client_app_loader, node_config_for
    from fedbox.fl.codec import decode_message, describe_body, encode_message, summarize
    from fedbox.fl.config import (
        AppConfig,
        AppConfigError,
        FederationConfig,
        bootstrap,
        check_node_ids,
        load_app_config,
        node_id_for,
        parse_run_config,
    )
    from fedbox.fl.contexts import ContextStore
    from fedbox.fl.events import FlEvent
    from fedbox.fl.fedavg import FedAvg, weighted_average
    from fedbox.fl.grid import (
        DEFAULT_MSG_TIMEOUT,
        ENDPOINT,
        FileGrid,
        default_timeout,
        run_id_for,
    )
    from fedbox.fl.job_run import FlJobRun, OwnerState, submit_fl
    from fedbox.fl.runner import NodeRunner, make_stop_message
    from fedbox.fl.server import ServerOutcome, run_server
    from fedbox.fl.tally import RunTally

_EXPORTS: dict[str, str] = {
    "ClientNode": "client",
    "client_app_loader": "client",
    "node_config_for": "client",
    "decode_message": "codec",
    "describe_body": "codec",
    "encode_message": "codec",
    "summarize": "codec",
    "AppConfig": "config",
    "AppConfigError": "config",
    "FederationConfig": "config",
    "bootstrap": "config",
    "check_node_ids": "config",
    "load_app_config": "config",
    "node_id_for": "config",
    "parse_run_config": "config",
    "ContextStore": "contexts",
    "FlEvent": "events",
    "FedAvg": "fedavg",
    "weighted_average": "fedavg",
    "DEFAULT_MSG_TIMEOUT": "grid",
    "ENDPOINT": "grid",
    "FileGrid": "grid",
    "default_timeout": "grid",
    "run_id_for": "grid",
    "FlJobRun": "job_run",
    "OwnerState": "job_run",
    "TooFewApprovals": "job_run",
    "submit_fl": "job_run",
    "NodeRunner": "runner",
    "make_stop_message": "runner",
    "ServerOutcome": "server",
    "run_server": "server",
    "RunTally": "tally",
}
"""Exported name -> the submodule that defines it."""

__all__ = [
    "DEFAULT_MSG_TIMEOUT",
    "ENDPOINT",
    "AppConfig",
    "AppConfigError",
    "ClientNode",
    "ContextStore",
    "FedAvg",
    "FederationConfig",
    "FileGrid",
    "FlEvent",
    "FlJobRun",
    "NodeRunner",
    "OwnerState",
    "RunTally",
    "ServerOutcome",
    "TooFewApprovals",
    "bootstrap",
    "check_node_ids",
    "client_app_loader",
    "decode_message",
    "default_timeout",
    "describe_body",
    "encode_message",
    "load_app_config",
    "make_stop_message",
    "node_config_for",
    "node_id_for",
    "parse_run_config",
    "run_id_for",
    "run_server",
    "submit_fl",
    "summarize",
    "weighted_average",
]


def __getattr__(name: str) -> object:
    """Import the submodule behind an exported name on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fedbox.fl' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fedbox.fl.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
