"""What a simulated client process sees: its share of the cores (issue 12, point 8) and
its ``--node-config`` (point 9), as reported by the fbprobe test app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fedbox.fl.threads import THREAD_ENV_VARS, available_cores, fair_share, thread_env

FBPROBE = Path(__file__).resolve().parent / "apps" / "fbprobe"


def simulate_probe(
    *args: str, env: dict[str, str] | None = None, pid: list[int] | None = None
) -> list[dict[str, Any]]:
    """Run fbprobe under ``fedbox simulate``; what each client saw, by partition. The
    simulate process's id is appended to ``pid``."""
    base = {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}
    with subprocess.Popen(
        [sys.executable, "-m", "fedbox", "simulate", str(FBPROBE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**base, **(env or {})},
    ) as proc:
        if pid is not None:
            pid.append(proc.pid)
        out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    lines = [line for line in out.splitlines() if line.startswith("fbprobe seen ")]
    seen = [json.loads(line.split(" ", 2)[2]) for line in lines]
    assert seen, out
    return sorted(seen, key=lambda s: s["node_config"]["partition-id"])


def test_each_client_process_gets_a_fair_share_of_the_cores() -> None:
    share = max(1, available_cores() // 3)
    seen = simulate_probe("--clients", "3")
    assert len(seen) == 3
    for client in seen:
        env = client["env"]
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == str(share), client
        assert env["OPENBLAS_NUM_THREADS"] == str(share), client
        assert client["torch"] == share, client  # the app imported torch: told too
        assert client["blas"] == [share], client  # numpy's BLAS pool took it


def test_each_client_process_draws_its_own_random_numbers() -> None:
    """Client processes forked from ``simulate`` after it imported NumPy would share its
    global generator's state, and an app drawing unseeded would train every client alike."""
    draws = [client["draw"] for client in simulate_probe("--clients", "3")]
    assert len(set(draws)) == 3, draws


def test_a_clientapps_exit_handlers_run_when_its_client_process_ends(tmp_path: Path) -> None:
    ran = tmp_path / "exit-handlers-ran"
    ran.mkdir()
    simulate_probe("--clients", "2", env={"FBPROBE_EXIT_DIR": str(ran)})
    assert len(list(ran.iterdir())) == 2


def test_in_process_clients_live_in_one_process_beside_the_aggregators(tmp_path: Path) -> None:
    """Issue 20: the ServerApp and a thousand virtual clients each get a core (and a GIL);
    the clients' process runs their exit handlers once when it ends."""
    ran = tmp_path / "exit-handlers-ran"
    ran.mkdir()
    simulate = []
    seen = simulate_probe(
        "--clients", "3", "--inprocess", env={"FBPROBE_EXIT_DIR": str(ran)}, pid=simulate
    )  # fmt: skip
    (host,) = {client["pid"] for client in seen}
    assert host != simulate[0]
    assert [p.name for p in ran.iterdir()] == [str(host)]
    assert len({client["draw"] for client in seen}) == 3


def test_thread_counts_the_user_set_are_kept() -> None:
    seen = simulate_probe("--clients", "2", env={"OMP_NUM_THREADS": "5"})
    for client in seen:
        assert client["env"]["OMP_NUM_THREADS"] == "5", client
        assert client["env"]["MKL_NUM_THREADS"] == str(max(1, available_cores() // 2)), client
        assert client["torch"] == (os.cpu_count() or 1), client  # torch left to the user


def test_fair_share_never_drops_below_one_thread() -> None:
    assert fair_share(3, cores=2) == 1
    assert fair_share(2, cores=8) == 4
    with pytest.raises(ValueError):
        fair_share(0, cores=2)
    added = thread_env(4, {"MKL_NUM_THREADS": "3", "OMP_NUM_THREADS": ""})
    assert "MKL_NUM_THREADS" not in added
    assert added["OMP_NUM_THREADS"] == added["FEDBOX_TORCH_THREADS"]


@pytest.mark.parametrize("mode", [(), ("--inprocess",)], ids=["processes", "inprocess"])
def test_node_config_reaches_each_clientapp_as_flower_parses_it(mode: tuple[str, ...]) -> None:
    seen = simulate_probe(
        "--clients",
        "3",
        *mode,
        "--node-config",
        "db='sqlite:///all.db' batch=32 ratio=0.5",
        "--node-config",
        '1:db="sqlite:///one.db"',
        "--node-config",
        "client-2@sim.fedbox:verbose=true batch=64",
    )
    configs = [client["node_config"] for client in seen]
    assert configs[0] == {
        "partition-id": 0,
        "num-partitions": 3,
        "data-path": "",
        "db": "sqlite:///all.db",
        "batch": 32,
        "ratio": 0.5,
    }
    assert configs[1]["db"] == "sqlite:///one.db" and configs[1]["batch"] == 32
    assert configs[2]["db"] == "sqlite:///all.db"
    assert configs[2]["batch"] == 64 and configs[2]["verbose"] is True


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("db=sqlite:///x.db", "invalid format"),  # a string needs quotes, as in Flower
        ("nothing-here", "no key=value"),
        ("3:a=1", "only 3 datasites"),
        ("who@else.org:a=1", "not a datasite of this run"),
        ("missing.toml", "no such file"),
    ],
)
def test_a_bad_node_config_is_a_usage_error(value: str, complaint: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fedbox", "simulate", str(FBPROBE), "--node-config", value],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert complaint in result.stdout + result.stderr
    assert "fedbox simulate:" not in result.stdout  # refused before anything started


def test_run_refuses_a_bad_node_config_before_connecting(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedbox",
            "run",
            str(FBPROBE),
            "--email",
            "site@lab.org",
            "--aggregator",
            "agg@uni.org",
            "--datasite",
            "site@lab.org",
            "--root",
            str(tmp_path / "store"),
            "--node-config",
            "other@lab.org:db='x'",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not a datasite of this run" in result.stdout + result.stderr
    assert not (tmp_path / "store").exists()
