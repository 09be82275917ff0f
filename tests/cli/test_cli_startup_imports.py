"""The ``fedbox`` command starts without importing what only some commands need.

Issue 20: Flower alone takes about half a second to import, the hub's web stack
(fastapi, uvicorn, sqlalchemy, httpx) as much again, and ``fedbox simulate``'s client
processes and ``fedbox --help`` paid for all of it before doing anything. They are
imported inside the commands that use them now; these tests keep it that way, in a
fresh interpreter each, since this test process has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("flwr", "numpy", "sklearn", "fastapi", "uvicorn", "sqlalchemy", "httpx", "grpc")
REPORT = "import json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"


def _loaded_after(code: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after running ``code`` in a new interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\n{REPORT}"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def _cli(*args: str) -> str:
    """Code running ``fedbox ARGS`` in-process (help exits through SystemExit)."""
    call = f"app({list(args)!r})"
    return f"from fedbox.cli.main import app\ntry:\n    {call}\nexcept SystemExit:\n    pass"


DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
_PLAN_AND_INTRODUCE = f"""
from fedbox.fl.config import load_app_config, parse_run_config
from fedbox.fl.simulate import introduce_participants, plan_simulation
app = load_app_config({str(DIGITS)!r})
plan = plan_simulation(app, parse_run_config(app.run_config, "num-server-rounds=1"))
introduce_participants(plan)
import shutil; shutil.rmtree(plan.temp_dir)
"""


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(_cli("--help"), id="fedbox --help"),
        # typer resolves every option's type for help: they must not need Flower
        pytest.param(_cli("simulate", "--help"), id="fedbox simulate --help"),
        pytest.param(_cli("runs", "export", "--help"), id="fedbox runs export --help"),
        # simulate's client processes run this module; Flower comes with the app
        pytest.param("import fedbox.cli.fl_commands", id="client entry module"),
        pytest.param("import fedbox, fedbox.fl", id="fedbox.fl package"),
        # simulate starts its client processes once it has done this much
        pytest.param(_PLAN_AND_INTRODUCE, id="simulate's plan and keys"),
    ],
)
def test_starts_without_heavy_packages(code: str) -> None:
    assert _loaded_after(code).isdisjoint(HEAVY)


ALL_MODULES = (
    "import json, sys; print(json.dumps(sorted(m for m in sys.modules if m.startswith('fedbox.'))))"
)


def _entry(*args: str) -> str:
    """Code running the ``fedbox`` command's entry point with ARGS, as the script does."""
    return (
        f"import sys\nsys.argv = ['fedbox', *{list(args)!r}]\nfrom fedbox.cli.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )


@pytest.mark.parametrize(
    "args", [("simulate", "--help"), ("-v", "run", "--help"), ("bootstrap", "--help")]
)
def test_the_flower_commands_load_no_other_command_group(args: tuple[str, ...]) -> None:
    """Issue 20: the whole command's groups (remote data science, the bridge, the hub,
    sync) were a fifth of ``fedbox simulate``'s way to its first round."""
    out = subprocess.run(
        [sys.executable, "-c", f"{_entry(*args)}\n{ALL_MODULES}"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Usage:" in out.stdout
    fedbox = {m.split(".")[1] for m in json.loads(out.stdout.splitlines()[-1]) if "." in m}
    assert fedbox.isdisjoint({"rds", "bridge", "hub", "sync", "ui"}), fedbox
