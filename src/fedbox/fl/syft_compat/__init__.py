"""Projects made for syft-flwr run under fedbox unchanged (issue 12, point 10).

Such projects import ``syft_flwr`` at run time (``syft_flwr.utils.run_syft_flwr``,
``get_syftbox_dataset_path``, ``syft_flwr.strategy.FedAvgWithModelSaving``, and the
``main.py`` its bootstrap writes imports ``syft_flwr.client``, ``syft_flwr.config`` and
``syft_flwr.run``). syft-flwr itself cannot be installed beside current Flower (it pins
an older flwr), so fedbox ships a stand-in package of its own, ``importable/syft_flwr``,
and puts it on the import path only when the real one is not importable: a user who
has syft-flwr keeps it. The stand-in answers with fedbox's meaning of each name (the
data dir is ``$DATA_DIR``, a participant's role is ``fedbox run``).

Apps that save checkpoints write them under ``$OUTPUT_DIR`` (syft-rds sets it for a
job); fedbox sets it too, unless the user did (:func:`export_output_dir`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

__all__ = [
    "MAIN_PY",
    "OUTPUT_DIR_ENV",
    "STAND_IN_DIR",
    "export_output_dir",
    "provide_syft_flwr",
]

logger = logging.getLogger(__name__)

STAND_IN_DIR = Path(__file__).resolve().parent / "importable"
"""The folder that holds the stand-in ``syft_flwr`` package (goes on ``sys.path``)."""
OUTPUT_DIR_ENV = "OUTPUT_DIR"

MAIN_PY = '''\
"""Start this participant's role in the federation: the aggregator runs the ServerApp,
a datasite serves the ClientApp. Who is who comes from [tool.syft_flwr] in
pyproject.toml; who *you* are from $SYFTBOX_EMAIL (or your SyftBox config).

Written by `fedbox bootstrap --syft-flwr`; it runs under syft-flwr and under fedbox.
"""

import sys
from pathlib import Path

try:
    import syft_flwr  # noqa: F401
except ImportError:  # not installed: fedbox's stand-in
    from fedbox.fl.syft_compat import provide_syft_flwr

    provide_syft_flwr()

from syft_flwr.client import create_client
from syft_flwr.config import load_flwr_pyproject
from syft_flwr.run import syftbox_run_flwr_client, syftbox_run_flwr_server

flower_project_dir = Path(__file__).parent.absolute()
client = create_client(project_dir=flower_project_dir)
federation = load_flwr_pyproject(flower_project_dir)["tool"]["syft_flwr"]

if client.email in federation["datasites"]:
    syftbox_run_flwr_client(flower_project_dir)
elif client.email == federation["aggregator"]:
    syftbox_run_flwr_server(flower_project_dir)
else:
    sys.exit(f"{client.email} is neither the aggregator nor a datasite of this project")
'''
"""The ``main.py`` of a project bootstrapped for syft-flwr (what syft-flwr's bootstrap
writes, in our words: the same imports and the same choice of role)."""


def provide_syft_flwr() -> bool:
    """Make ``import syft_flwr`` work: True if fedbox's stand-in was put on the path,
    False if the real package (or the stand-in, already) is importable."""
    if importlib.util.find_spec("syft_flwr") is not None:
        return False
    sys.path.append(str(STAND_IN_DIR))
    importlib.invalidate_caches()
    logger.debug("syft_flwr is not installed: using fedbox's stand-in from %s", STAND_IN_DIR)
    return True


def export_output_dir(default: Path) -> Path:
    """``$OUTPUT_DIR`` as the user set it, else ``default`` (set in the environment, so
    client processes inherit it); returned, and created where missing, private to this
    user (0700): the default lives in a private state dir, and checkpoints are results."""
    folder = Path(os.environ.get(OUTPUT_DIR_ENV) or default).expanduser().resolve()
    for missing in reversed([folder, *folder.parents]):
        if not missing.exists():
            missing.mkdir(mode=0o700, exist_ok=True)
    os.environ[OUTPUT_DIR_ENV] = str(folder)
    return folder
