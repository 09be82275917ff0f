"""An app's pyproject.toml and ``--run-config`` read without Flower give what Flower's
own helpers give: the same result, or the same error from Flower itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fl_helpers import DIGITS, FBCOUNT
from flwr.common.config import flatten_dict, fuse_dicts, get_project_config, parse_config_args

from fedbox.fl.flower_config import fuse_run_config, project_config

HEAD = """
[project]
name = "demo"
version = "1.0.0"

[tool.flwr.app]
publisher = "tests"
{extra}
[tool.flwr.app.components]
serverapp = "demo.server:app"
clientapp = "demo.client:app"
"""

PYPROJECTS = {
    "plain": HEAD.format(extra="")
    + '[tool.flwr.app.config]\nlr = 0.1\nrounds = 3\nname = "x"\niid = true\n'
    + "[tool.flwr.app.config.model]\ndepth = 2\n",
    "no run config": HEAD.format(extra=""),
    "fab patterns": HEAD.format(extra='fab-include = ["*.py"]\n'),
    "bad fab patterns": HEAD.format(extra="fab-exclude = []\n"),
    "list value": HEAD.format(extra="") + "[tool.flwr.app.config]\nsizes = [1, 2]\n",
    "no publisher": HEAD.format(extra="").replace('publisher = "tests"', ""),
    "no clientapp": HEAD.format(extra="").replace('clientapp = "demo.client:app"', ""),
    "no version": HEAD.format(extra="").replace('version = "1.0.0"', ""),
    "not toml": HEAD.format(extra="") + "[tool.flwr.app.config\n",
}


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def _flowers_project(app_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    raw = get_project_config(app_dir)
    return raw, flatten_dict(raw["tool"]["flwr"]["app"].get("config", {}))


@pytest.mark.parametrize("text", PYPROJECTS.values(), ids=PYPROJECTS.keys())
def test_pyproject_reads_as_flower_reads_it(tmp_path: Path, text: str) -> None:
    (tmp_path / "pyproject.toml").write_text(text)
    assert _outcome(project_config, tmp_path) == _outcome(_flowers_project, tmp_path)


def test_example_apps_read_as_flower_reads_them() -> None:
    for app in (DIGITS, FBCOUNT):
        assert project_config(app) == _flowers_project(app)


DEFAULTS = {"lr": 0.1, "rounds": 3, "name": "x", "iid": True, "model.depth": 2}
OVERRIDES = {
    "numbers": ["lr=0.5 rounds=10"],
    "strings and bools": ["name='y z' iid=false", "model.depth=4"],
    "dotted as a table": ["model.depth=5 lr=1e-3"],
    "none": [],
    "unknown key": ["lr=0.5 epochs=2"],
    "not toml": ["lr=[1"],
    "list value": ["lr=[1, 2]"],
    "toml file": ["missing-overrides.toml"],
}


def _flowers_fuse(defaults: dict[str, Any], items: list[str]) -> dict[str, Any]:
    return fuse_dicts(dict(defaults), parse_config_args(items))


@pytest.mark.parametrize("items", OVERRIDES.values(), ids=OVERRIDES.keys())
def test_run_config_overrides_fuse_as_flower_fuses_them(items: list[str]) -> None:
    assert _outcome(fuse_run_config, DEFAULTS, items) == _outcome(_flowers_fuse, DEFAULTS, items)


def test_a_toml_overrides_file_is_read_by_flower(tmp_path: Path) -> None:
    overrides = tmp_path / "over.toml"
    overrides.write_text("lr = 0.25\n[model]\ndepth = 7\n")
    fused = fuse_run_config(DEFAULTS, [str(overrides)])
    assert fused == _flowers_fuse(DEFAULTS, [str(overrides)])
    assert fused["lr"] == 0.25 and fused["model.depth"] == 7


def test_a_plain_app_is_read_without_importing_flower() -> None:
    code = (
        "import json, sys\n"
        "from fedbox.fl.config import load_app_config, parse_run_config\n"
        f"app = load_app_config({str(DIGITS)!r})\n"
        "parse_run_config(app.run_config, 'lr=0.2 num-server-rounds=1')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'flwr')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    assert json.loads(out.stdout) == []
