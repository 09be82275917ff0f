"""syft-flwr projects run unchanged (issue 12, point 10): fedbox's stand-in ``syft_flwr``,
``$OUTPUT_DIR`` for checkpoints, and ``fedbox bootstrap --syft-flwr``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from fl_helpers import FEDERATION_ARGS, run_fedbox

from fedbox.fl.syft_compat import STAND_IN_DIR, provide_syft_flwr

FBSYFT = Path(__file__).resolve().parent / "apps" / "fbsyft"


def fedbox(*args: str) -> subprocess.CompletedProcess[str]:
    return run_fedbox(*args, timeout=180)


def data_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Two datasites' data: means 2 (3 rows) and 6 (2 rows); FedAvg's mean is 3.6."""
    first, second = tmp_path / "do1-data", tmp_path / "do2-data"
    for folder, values in ((first, "1\n2\n3\n"), (second, "5\n7\n")):
        folder.mkdir()
        (folder / "values.csv").write_text(values)
    return first, second


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    data = raw[8 + size :]
    assert header["layer_0"]["dtype"] == "F32"
    return {
        name: np.frombuffer(data[slice(*spec["data_offsets"])], dtype="<f4").reshape(spec["shape"])
        for name, spec in header.items()
    }


def check_checkpoints(weights: Path) -> None:
    names = sorted(p.name for p in weights.iterdir())
    assert names == [f"parameters_round_{n}.safetensors" for n in range(3)], names
    final = read_safetensors(weights / "parameters_round_2.safetensors")["layer_0"]
    assert final.shape == (1,) and abs(float(final[0]) - 3.6) < 1e-5


def test_a_syft_flwr_app_runs_under_simulate(tmp_path: Path, fedbox_home: Path) -> None:
    first, second = data_dirs(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "OUTPUT_DIR"}
    args = ["simulate", str(FBSYFT), "-n", "2", "--data", str(first), "--data", str(second)]
    result = run_fedbox(*args, timeout=180, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    # run_syft_flwr() and get_syftbox_dataset_path() found each datasite's $DATA_DIR
    assert out.count("fbsyft evaluated by 2 clients, 2 from DATA_DIR") == 2, out
    app_name = re.search(r"app\s+(\S+)", out).group(1)
    output = fedbox_home / "output" / app_name
    assert f"output {output}" in out
    check_checkpoints(output / "weights")  # FedAvgWithModelSaving under $OUTPUT_DIR


def test_the_stand_in_is_used_only_when_syft_flwr_is_not_importable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # other in-process tests may have loaded an app already, which put the stand-in on
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(STAND_IN_DIR)])
    for name in [m for m in sys.modules if m == "syft_flwr" or m.startswith("syft_flwr.")]:
        monkeypatch.delitem(sys.modules, name)
    real = tmp_path / "site"
    (real / "syft_flwr").mkdir(parents=True)
    (real / "syft_flwr" / "__init__.py").write_text("REAL = True\n")
    monkeypatch.syspath_prepend(str(real))
    assert provide_syft_flwr() is False
    assert str(STAND_IN_DIR) not in sys.path
    sys.path.remove(str(real))
    assert provide_syft_flwr() is True
    assert provide_syft_flwr() is False  # once is enough
    import syft_flwr
    from syft_flwr.utils import get_syftbox_dataset_path, run_syft_flwr

    assert syft_flwr.FEDBOX_STAND_IN
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "absent"))
    assert run_syft_flwr() is False
    with pytest.raises(FileNotFoundError):
        get_syftbox_dataset_path()
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert run_syft_flwr() is True and get_syftbox_dataset_path() == tmp_path


def bootstrapped(tmp_path: Path) -> Path:
    app = Path(shutil.copytree(FBSYFT, tmp_path / "fbsyft"))
    result = fedbox("bootstrap", str(app), "--syft-flwr", *FEDERATION_ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    return app


def test_bootstrap_syft_flwr_writes_the_table_and_main_py(tmp_path: Path) -> None:
    app = bootstrapped(tmp_path)
    table = tomllib.loads((app / "pyproject.toml").read_text())["tool"]["syft_flwr"]
    assert table["aggregator"] == "ds@uni.org"
    assert table["datasites"] == ["do1@hosp.org", "do2@lab.org"]
    assert table["transport"] == "syftbox"
    assert re.fullmatch(r"ds@uni\.org_fbsyft_\d+", table["app_name"])
    main = (app / "main.py").read_text()
    for module in ("syft_flwr.client", "syft_flwr.config", "syft_flwr.run"):
        assert f"from {module} import" in main
    before = (app / "pyproject.toml").read_bytes()
    again = fedbox(
        "bootstrap", str(app), "--syft-flwr", "--aggregator", "a@b.org", "--datasite", "c@d.org"
    )
    assert again.returncode == 2 and "main.py already exists" in again.stdout + again.stderr
    assert (app / "pyproject.toml").read_bytes() == before  # refused: nothing changed


def test_a_bootstrapped_project_runs_from_main_py_and_under_simulate(tmp_path: Path) -> None:
    app = bootstrapped(tmp_path)
    first, second = data_dirs(tmp_path)
    store, output = tmp_path / "store", tmp_path / "ds-output"
    store.mkdir()
    roles = {"ds@uni.org": None, "do1@hosp.org": first, "do2@lab.org": second}
    procs = {}
    for email, data in roles.items():
        env = {**os.environ, "SYFTBOX_EMAIL": email, "FEDBOX_ROOT": str(store)}
        env.pop("DATA_DIR", None)
        if data is None:
            env["OUTPUT_DIR"] = str(output)  # set by the user: kept
        else:
            env["DATA_DIR"] = str(data)
        procs[email] = subprocess.Popen(
            [sys.executable, "main.py"],
            cwd=app,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        outputs = {email: proc.communicate(timeout=180)[0] for email, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    for email, proc in procs.items():
        assert proc.returncode == 0, f"{email}:\n{outputs[email]}"
    assert "2 from DATA_DIR" in outputs["ds@uni.org"]
    check_checkpoints(output / "weights")
    result = fedbox("simulate", str(app), "--data", str(first), "--data", str(second))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "do2@lab.org" in result.stdout
