"""fedbox's stand-in for syft-flwr: the names syft-flwr projects import, with fedbox's
meaning (see :mod:`fedbox.fl.syft_compat`). Only used when syft-flwr is not installed."""

from .bootstrap import bootstrap
from .run import run

__all__ = ["FEDBOX_STAND_IN", "__version__", "bootstrap", "run"]

__version__ = "0.5.3"
"""The syft-flwr release whose names this stand-in covers."""
FEDBOX_STAND_IN = True
"""Tells this package from the real syft-flwr."""
