"""Flower over files (layer 8): FileGrid, the ClientApp runner, simulate/bootstrap/run."""

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

__all__ = [
    "AppConfig",
    "AppConfigError",
    "FederationConfig",
    "bootstrap",
    "check_node_ids",
    "load_app_config",
    "node_id_for",
    "parse_run_config",
]
