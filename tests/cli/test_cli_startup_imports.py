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
    ],
)
def test_starts_without_heavy_packages(code: str) -> None:
    assert _loaded_after(code).isdisjoint(HEAVY)
