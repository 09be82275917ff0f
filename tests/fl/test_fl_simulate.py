"""`fedbox simulate` end to end: real client processes (or --inprocess) over one folder."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fl_helpers import ANALYTICS, DIGITS, FBCOUNT, FBLEGACY, run_fedbox
from typer.testing import CliRunner

from fedbox.cli.main import app as main_app
from fedbox.cli.progress import WAITING_LINE_EVERY


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
    assert out.count("[ROUND 1/5]") == 1, out  # Flower's own log, shown once by default
    for i in range(3):
        assert re.search(rf"client-{i}@sim\.fedbox\s+│ yes\s+│ 10/10 .*│ yes\s+│ 0\s+│", out), out
    # everything went through the folder, in the layout of the spec
    requests = list(
        root.glob(
            "syft_outbox_inbox_aggregator@sim.fedbox_to_client-0@sim.fedbox/*/rpc/messages/*.request"
        )
    )
    assert len(requests) == 12  # join + 5 rounds x (train + evaluate) + stop
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


def test_a_raising_clientapp_shows_its_error_and_its_kept_log_the_traceback() -> None:
    out = _ok(run_fedbox("simulate", str(FBCOUNT), "--run-config", "fail-partition=1"))
    assert "fbcount round 2 partition 0 count 2" in out and "fbcount done" in out
    assert "client-1@sim.fedbox: 2 errors, last: RuntimeError: partition 1 refuses to train" in out
    kept = Path(re.search(r"client logs kept: (\S+)/\*\.log", out).group(1))
    try:
        log = (kept / "client-1@sim.fedbox.log").read_text()
    finally:
        shutil.rmtree(kept)
    assert "Traceback (most recent call last):" in log
    assert 'raise RuntimeError(f"partition {pid} refuses to train")' in log
    assert "\nRuntimeError: partition 1 refuses to train\n" in log


def test_in_process_clients_keep_their_tracebacks_in_a_log_not_on_the_console() -> None:
    result = run_fedbox(
        "simulate", str(FBCOUNT), "--inprocess", "--run-config", "fail-partition=1"
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "client-1@sim.fedbox: 2 errors, last: RuntimeError: partition 1 refuses to train" in out
    assert "Traceback" not in out
    kept = Path(re.search(r"client logs kept: (\S+)/\*\.log", out).group(1))
    try:
        log = (kept / "clients.log").read_text()
    finally:
        shutil.rmtree(kept)
    assert log.count("Traceback (most recent call last):") == 2, log
    assert 'raise RuntimeError(f"partition {pid} refuses to train")' in log


def test_a_crashed_process_of_in_process_clients_fails_the_run_and_says_where_its_log_is() -> None:
    result = run_fedbox(
        "simulate", str(FBCOUNT), "--inprocess", "--timeout", "3", "--stop-wait", "1",
        "--run-config", "crash-partition=0 num-server-rounds=1",
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "the virtual clients' process exited with code 3" in out, out
    assert "(its log: clients.log)" in out, out
    kept = Path(re.search(r"client logs kept: (\S+)/\*\.log", out).group(1))
    try:
        assert (kept / "clients.log").is_file()
    finally:
        shutil.rmtree(kept)


def test_every_reply_of_the_last_round_an_error_exits_nonzero() -> None:
    result = run_fedbox(
        "simulate", str(FBCOUNT), "--clients", "1", "--run-config", "fail-partition=0"
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "run failed: every reply of round 2 was an error" in out
    shutil.rmtree(re.search(r"client logs kept: (\S+)/\*\.log", out).group(1))


def test_no_datasite_ever_answering_exits_nonzero() -> None:
    result = run_fedbox(
        "simulate", str(FBCOUNT), "--clients", "1", "--timeout", "1", "--stop-wait", "1",
        "--run-config", "num-server-rounds=1 train-pause=5",
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "did not answer in time: client-0@sim.fedbox" in out
    assert "run failed: no datasite ever answered" in out
    shutil.rmtree(re.search(r"client logs kept: (\S+)/\*\.log", out).group(1))


def test_without_a_terminal_each_round_phase_is_a_line_as_it_happens() -> None:
    result = run_fedbox("simulate", str(FBCOUNT), "--clients", "2")  # stdout is a pipe
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    line = "round 1 train: 2/2 replies, 0 errors, 0 timeouts"
    assert out.index(line) < out.index("fbcount round 2 partition"), out
    assert out.count(line) == 1 and "round 2 train: 2/2 replies" in out
    assert "count=1  partition=0.5" in out


def test_json_progress_is_one_object_per_line() -> None:
    result = run_fedbox("simulate", str(FBCOUNT), "--clients", "2", "--json-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    phases = [e for e in events if e["event"] == "phase"]
    assert [(p["round"], p["type"], p["replies"], p["sent"], p["errors"]) for p in phases] == [
        ("1", "train", 2, 2, 0),
        ("2", "train", 2, 2, 0),
    ]
    assert phases[0]["metrics"] == {"count": 1.0, "partition": 0.5}
    joined = {e["datasite"] for e in events if e["event"] == "joined"}
    assert joined == {"client-0@sim.fedbox", "client-1@sim.fedbox"}
    sites = {e["datasite"]: e for e in events if e["event"] == "datasite"}
    assert (
        sites["client-1@sim.fedbox"]["replies"] == 2 and sites["client-1@sim.fedbox"]["exit"] == 0
    )
    assert events[-1]["event"] == "end" and events[-1]["exit"] == 0
    assert events[-1]["status"] == "finished"
    first_phase = next(i for i, line in enumerate(lines) if '"event": "phase"' in line)
    assert first_phase < next(i for i, line in enumerate(lines) if "fbcount round 2" in line)
    assert "┃" not in result.stdout  # no tables among the JSON


def test_metrics_of_a_legacy_api_app_are_shown() -> None:
    out = _ok(run_fedbox("simulate", str(FBLEGACY), "--clients", "2"))
    assert re.search(r"│\s+2 │ train\s+│\s+2/2 .*│ accuracy=0\.375", out), out
    assert re.search(r"│\s+2 │ evaluate\s+│\s+2/2 .*│ eval-accuracy=0\.625  loss=0\.5", out), out


@pytest.mark.parametrize("value", ["0", "4"])
def test_min_datasites_beyond_the_datasites_is_a_usage_error(value: str) -> None:
    result = run_fedbox("simulate", str(FBCOUNT), "--clients", "3", "--min-datasites", value)
    assert result.returncode == 2
    assert f"--min-datasites {value}: give 1 to 3" in result.stdout + result.stderr


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


def test_many_in_process_clients_finish_and_are_summarised(tmp_path: Path) -> None:
    """Issue 20: clients start several at once, each file event reaches its own client
    only, and the report is one row for all plus those that need a look (none here)."""
    clients = 60
    out = _ok(
        run_fedbox("simulate", str(FBCOUNT), "--inprocess", "--clients", str(clients), timeout=600)
    )
    assert re.search(rf"│ all {clients}\s+│ {clients}\s+│ {2 * clients}/{2 * clients} ", out), out
    assert "│ client-7@sim.fedbox" not in out and "joined: client-7" not in out  # no row or line
    assert out.count("waiting for") < 15, f"one line per {WAITING_LINE_EVERY:g} s, not per join"
    assert f"joined: {clients} of {clients} datasites" in out
    assert "ServerApp finished" in out


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_client_logs_are_plain_lines_when_simulate_runs_in_a_terminal(tmp_path: Path) -> None:
    """A client forked from a ``simulate`` in a terminal inherits its logging and consoles,
    set up for that terminal (Rich's columns and wrapping); its log gets the plain lines
    a client started on its own writes."""
    primary, secondary = os.openpty()
    cmd = [sys.executable, "-m", "fedbox", "simulate", str(FBCOUNT), "-n", "1"]
    cmd += ["--root", str(tmp_path / "fed"), "--run-config", "num-server-rounds=1 fail-partition=0"]
    proc = subprocess.Popen(cmd, stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    screen = b""
    with contextlib.suppress(OSError):  # EIO once nobody holds the terminal any more
        while chunk := os.read(primary, 65536):
            screen += chunk
    os.close(primary)
    assert proc.wait(timeout=120) == 1, screen.decode(errors="replace")
    log = (tmp_path / "fed-state" / "client-0@sim.fedbox" / "client.log").read_text()
    assert re.search(
        r"^fedbox run: client-0@sim\.fedbox serving .* \(partition 0 of 1\)$", log, re.M
    )
    assert " ERROR fedbox.fl.runner: node " in log, log  # logging's plain format
    assert "\x1b" not in log


def test_client_logs_are_written_when_simulate_runs_inside_a_program(tmp_path: Path) -> None:
    """Run in a program that captures its output (a test runner, here Typer's), simulate
    still leaves each client's lines in the client's log, as a client process would."""
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom fedbox.cli.main import app\n"
        "result = CliRunner().invoke(app, sys.argv[1:])\nsys.exit(result.exit_code)"
    )
    args = ["simulate", str(FBCOUNT), "-n", "1", "--root", str(tmp_path / "fed")]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    log = (tmp_path / "fed-state" / "client-0@sim.fedbox" / "client.log").read_text()
    assert "fedbox run: client-0@sim.fedbox serving " in log, log
    assert "fedbox run: client-0@sim.fedbox stopped by the aggregator" in log, log
