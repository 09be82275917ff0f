"""`fedbox simulate` end to end: real client processes (or --inprocess) over one folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fl_helpers import ANALYTICS, DIGITS, FBCOUNT, run_fedbox
from typer.testing import CliRunner

from fedbox.cli.main import app as main_app


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    return out


def test_digits_reaches_90_percent_over_3_client_processes(tmp_path: Path) -> None:
    root = tmp_path / "fed"
    out = _ok(run_fedbox("simulate", str(DIGITS), "--clients", "3", "--root", str(root)))
    accuracy = float(re.search(r"final test accuracy ([0-9.]+)", out).group(1))
    assert accuracy >= 0.90, out
    assert "ServerApp finished" in out
    for i in range(3):
        assert re.search(rf"client-{i}@sim\.fedbox\s+│ 10/10 .*│ yes\s+│ 0\s+│", out), out
    # everything went through the folder, in the layout of the spec
    requests = list(
        root.glob(
            "syft_outbox_inbox_aggregator@sim.fedbox_to_client-0@sim.fedbox/*/rpc/messages/*.request"
        )
    )
    assert len(requests) == 11  # 5 rounds x (train + evaluate) + stop
    state = tmp_path / "fed-state" / "client-0@sim.fedbox" / "fl"
    assert list(state.glob("*/context-*.pb"))


def test_analytics_queries_merge_histograms(tmp_path: Path) -> None:
    out = _ok(run_fedbox("simulate", str(ANALYTICS), "--clients", "3"))
    assert "3/3 sites answered, 569 rows in total" in out
    counts = [int(m) for m in re.findall(r"analytics: \[.*?\)\s+(\d+)", out)]
    assert len(counts) == 10 and sum(counts) == 569


def test_data_dirs_reach_the_clientapp(tmp_path: Path) -> None:
    data = tmp_path / "site-data"
    data.mkdir()
    rows = "\n".join(f"{10 + i / 10}" for i in range(12))
    (data / "data.csv").write_text(f"mean radius\n{rows}\n")
    out = _ok(run_fedbox("simulate", str(ANALYTICS), "--clients", "2", "--data", str(data)))
    assert "2/2 sites answered, 24 rows in total" in out


def test_a_raising_clientapp_is_an_error_reply_and_the_run_goes_on(tmp_path: Path) -> None:
    out = _ok(run_fedbox("simulate", str(FBCOUNT), "--run-config", "fail-partition=1"))
    assert "partition 1 refuses to train" in out
    assert "fbcount round 2 partition 0 count 2" in out and "fbcount done" in out
    assert "answered with errors: client-1@sim.fedbox" in out


def test_a_failing_serverapp_exits_nonzero(tmp_path: Path) -> None:
    result = run_fedbox("simulate", str(FBCOUNT), "--clients", "1", "--run-config", "payload=-1")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "ServerApp failed" in out
    assert re.search(r"client-0@sim\.fedbox .*│ yes", out), out  # still told to stop


def test_syft_flwr_project_runs_unchanged(tmp_path: Path) -> None:
    app = Path(shutil.copytree(FBCOUNT, tmp_path / "fbcount"))
    with open(app / "pyproject.toml", "a") as f:
        f.write(
            '\n[tool.syft_flwr]\naggregator = "ds@uni.org"\n'
            'datasites = ["do1@hosp.org", "do2@lab.org"]\nsome_other_key = 1\n'
        )
    out = _ok(run_fedbox("simulate", str(app), "--run-config", "num-server-rounds=1"))
    assert "app    ds@uni.org_fbcount_" in out
    assert "do1@hosp.org" in out and "do2@lab.org" in out and "client-0" not in out
    assert "fbcount round 1 replies 2" in out


def test_bad_run_config_is_a_usage_error() -> None:
    result = run_fedbox("simulate", str(FBCOUNT), "--run-config", "no-such-key=1")
    assert result.returncode == 2
    assert "no-such-key" in result.stderr


def test_200_virtual_clients_in_process(tmp_path: Path) -> None:
    out = _ok(
        run_fedbox(
            "simulate",
            str(FBCOUNT),
            "--clients",
            "200",
            "--inprocess",
            "--run-config",
            "num-server-rounds=1",
            "--timeout",
            "60",
            timeout=180,
        )
    )
    assert "fbcount round 1 replies 200" in out
    assert re.search(r"│\s+1 │ train\s+│ 200/200 │", out), out
    assert "did not answer" not in out


def test_chunk_flags_cut_bodies_into_chunk_blobs(tmp_path: Path) -> None:
    root = tmp_path / "fed"
    args = ["--clients", "2", "--root", str(root), "--run-config", "payload=100000"]
    chunking = ["--chunk-threshold", "100KiB", "--chunk-size", "64KiB"]
    out = _ok(run_fedbox("simulate", str(FBCOUNT), *args, *chunking))
    assert "fbcount round 2 replies 2" in out
    blobs = [p for p in root.glob("syft_outbox_inbox_*/*/blobs/*") if not p.name.startswith(".")]
    senders = {p.parts[-4].split("_to_")[0] for p in blobs}
    assert len(senders) == 3, "the aggregator and both clients chunked their 400 KB bodies"
    sizes = {p.stat().st_size for p in blobs}
    assert max(sizes) == (64 << 10) + 16, sizes  # a full chunk and its authentication tag
    assert min(sizes) < 64 << 10, sizes  # each body's last chunk


@pytest.mark.parametrize(("value", "says"), [("12XB", "is not a size"), ("0", "is not a positive")])
def test_a_bad_chunk_size_is_a_usage_error(value: str, says: str) -> None:
    result = run_fedbox("simulate", str(FBCOUNT), "--chunk-size", value)
    assert result.returncode == 2
    assert f"'{value}' {says}" in result.stdout + result.stderr


def test_chunk_flags_reach_the_boxes_as_arguments_not_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command runs in this process: afterwards the environment is as it was."""
    for name in ("FEDBOX_CHUNK_THRESHOLD", "FEDBOX_CHUNK_SIZE"):
        monkeypatch.setenv(name, "1")  # so that undo removes whatever the command sets
        monkeypatch.delenv(name)
    monkeypatch.setenv("FEDBOX_MALLOC", "system")  # keep this test process's allocator
    root = tmp_path / "fed"
    args = ["--inprocess", "--clients", "2", "--root", str(root), "--run-config", "payload=100000"]
    chunking = ["--chunk-threshold", "100KiB", "--chunk-size", "64KiB"]
    result = CliRunner().invoke(main_app, ["simulate", str(FBCOUNT), *args, *chunking])
    assert result.exit_code == 0, result.output
    assert "FEDBOX_CHUNK_THRESHOLD" not in os.environ and "FEDBOX_CHUNK_SIZE" not in os.environ
    blobs = [p for p in root.glob("syft_outbox_inbox_*/*/blobs/*") if not p.name.startswith(".")]
    assert len({p.parts[-4].split("_to_")[0] for p in blobs}) == 3, "everyone chunked"
    assert max(p.stat().st_size for p in blobs) == (64 << 10) + 16
