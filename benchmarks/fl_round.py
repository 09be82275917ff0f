"""Seconds per FedAvg round: fedbox over a folder vs Flower's simulation and deployment engines.

One ServerApp/ClientApp pair (FedAvg, 3 clients, trivial training: add 1 to every
weight) with models of 40 KB, 4 MB and 40 MB, run in one invocation over

(a) ``fedbox simulate``: client processes exchanging files in a local folder;
(b) Flower's simulation engine (``flwr.simulation.run_simulation``; needs ``ray``);
(c) Flower's deployment engine: ``flower-superlink`` and three ``flower-supernode``
    processes on 127.0.0.1, the run submitted with ``flwr run``.

The ServerApp stamps the time after every round (FedAvg's ``evaluate_fn`` is called
once per round), so every engine is timed by the same code; the first round includes
start-up and is left out of the steady state (median of the other rounds).

Usage: ``python benchmarks/fl_round.py [--rounds 6] [--sizes 40KB,4MB,40MB]
[--engines fedbox,simulation,deployment] [--work-dir DIR]``. An engine that cannot run
here is reported as skipped, with the reason. Every message is a file, so the run first
says how long creating a file in the work dir takes now (see :func:`file_creation_us`).

Many virtual clients (issue 20): ``--clients 1000 [--rounds 5]`` runs the 40 KB app with
that many clients in one process, ``fedbox simulate --inprocess`` beside Flower's
simulation engine (skipped, with a message, without ``ray``), and prints milliseconds per
client message (a round's seconds over the clients; one message and its reply each)
and the memory of an idle virtual client (RSS growth while they start, over their number).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "flbench"
version = "1.0.0"
description = "fedbox benchmark app: FedAvg with trivial training"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "fedbox"

[tool.flwr.app.components]
serverapp = "flbench.server_app:app"
clientapp = "flbench.client_app:app"

[tool.flwr.app.config]
model-floats = 10000
num-server-rounds = 6
timing-file = ""
"""

SERVER_APP = '''\
"""FedAvg over 3 nodes; stamps the time (and this process's CPU seconds) after every
round into timing-file."""

import os
import time

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


def _cfg(context, key):
    # Flower's run_simulation() has no run config: fall back to the environment.
    value = context.run_config.get(key)
    env = "FLBENCH_" + key.upper().replace("-", "_")
    return value if value not in (None, "") else os.environ[env]


@app.main()
def main(grid: Grid, context: Context) -> None:
    floats = int(_cfg(context, "model-floats"))
    timing = str(_cfg(context, "timing-file"))

    def stamp(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        with open(timing, "a") as f:
            f.write(f"{server_round} {time.time()} {time.process_time()}\\n")
        return MetricRecord({"round": server_round})

    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=3, min_available_nodes=3)
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord([np.zeros(floats, dtype=np.float32)]),
        num_rounds=int(_cfg(context, "num-server-rounds")),
        evaluate_fn=stamp,
    )
'''

CLIENT_APP = '''\
"""Trivial training: add 1 to every weight."""

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    arrays = [a + 1 for a in msg.content["arrays"].to_numpy_ndarrays()]
    content = RecordDict(
        {"arrays": ArrayRecord(arrays), "metrics": MetricRecord({"num-examples": 1})}
    )
    return Message(content, reply_to=msg)
'''

SIMULATION_DRIVER = """\
import sys
sys.path.insert(0, sys.argv[1])
from flwr.simulation import run_simulation
from flbench.client_app import app as client_app
from flbench.server_app import app as server_app
run_simulation(server_app=server_app, client_app=client_app, num_supernodes=int(sys.argv[2]),
               backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}})
"""

SIZES = {"40KB": 10_000, "4MB": 1_000_000, "40MB": 10_000_000}
BIN = Path(sys.executable).parent
QUIET_CREATE_US = 30
LINK_PORT, NODE_PORT = 9095, 9096


class Skipped(Exception):
    """The engine cannot run in this environment (the message says why)."""


def write_app(base: Path) -> Path:
    app = base / "flbench_app"
    (app / "flbench").mkdir(parents=True)
    (app / "pyproject.toml").write_text(PYPROJECT)
    (app / "flbench" / "__init__.py").write_text('"""flbench."""\n')
    (app / "flbench" / "server_app.py").write_text(SERVER_APP)
    (app / "flbench" / "client_app.py").write_text(CLIENT_APP)
    return app


def read_rounds(timing: Path) -> list[float]:
    """Seconds per round from the stamps (round 0 is the start)."""
    stamps = sorted(
        (int(r), float(t))
        for r, t, *_ in (line.split() for line in timing.read_text().splitlines())
    )
    return [b[1] - a[1] for a, b in itertools.pairwise(stamps)]


def wait_for_rounds(
    timing: Path, rounds: int, timeout: float, procs: Sequence[subprocess.Popen[bytes]] = ()
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if timing.exists() and len(timing.read_text().splitlines()) >= rounds + 1:
            return
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[0]} exited with {p.returncode}")
        time.sleep(0.2)
    raise TimeoutError(f"fewer than {rounds} rounds within {timeout} s")


def run_fedbox(
    app: Path, floats: int, rounds: int, work: Path, *extra: str, clients: int = 3
) -> list[float]:
    timing = work / "fedbox.timing"
    config = f"model-floats={floats} num-server-rounds={rounds} timing-file='{timing}'"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedbox",
            "simulate",
            str(app),
            "--clients",
            str(clients),
            "--run-config",
            config,
            "--root",
            str(work / "fedbox-root"),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"fedbox simulate failed:\n{result.stdout}\n{result.stderr}")
    return read_rounds(timing)


def run_simulation(
    app: Path, floats: int, rounds: int, work: Path, clients: int = 3
) -> list[float]:
    if importlib.util.find_spec("ray") is None:
        raise Skipped("ray is not installed (pip install 'flwr[simulation]')")
    timing = work / "simulation.timing"
    env = {
        **os.environ,
        "FLBENCH_MODEL_FLOATS": str(floats),
        "FLBENCH_NUM_SERVER_ROUNDS": str(rounds),
        "FLBENCH_TIMING_FILE": str(timing),
    }
    result = subprocess.run(
        [sys.executable, "-c", SIMULATION_DRIVER, str(app), str(clients)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    if result.returncode != 0 or not timing.exists():
        raise RuntimeError(
            f"Flower simulation failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return read_rounds(timing)


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def run_deployment(app: Path, floats: int, rounds: int, work: Path) -> list[float]:
    for tool in ("flower-superlink", "flower-supernode", "flwr"):
        if not (BIN / tool).exists():
            raise Skipped(f"{tool} not found next to {sys.executable}")
    # Flower >= 1.41 serves every SuperLink API (Fleet, Control, Runtime) over HTTP on one port.
    ports = [LINK_PORT, *(NODE_PORT + i for i in range(3))]
    busy = [p for p in ports if not _free(p)]
    if busy:
        raise Skipped(f"ports {busy} on 127.0.0.1 are in use")
    timing = work / "deployment.timing"
    home = work / "flwr-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "bench"\n\n'
        f'[superlink.bench]\naddress = "127.0.0.1:{LINK_PORT}"\ninsecure = true\n'
    )
    # The SuperLink and SuperNodes start helper processes (flower-superexec) by name.
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": path}
    logs = work / "deployment-logs"
    logs.mkdir(exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *cmd: str) -> subprocess.Popen[bytes]:
        with open(logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True
            )
        procs.append(proc)
        return proc

    try:
        start("superlink", str(BIN / "flower-superlink"), "--insecure", "--port", str(LINK_PORT))
        for i in range(3):
            start(
                f"supernode-{i}",
                str(BIN / "flower-supernode"),
                "--insecure",
                "--superlink",
                f"127.0.0.1:{LINK_PORT}",
                "--port",
                str(NODE_PORT + i),
                "--node-config",
                f"partition-id={i} num-partitions=3",
            )
        deadline = time.monotonic() + 60
        while _free(LINK_PORT):
            if time.monotonic() > deadline:
                raise RuntimeError("SuperLink did not open its control API")
            time.sleep(0.2)
        config = f"model-floats={floats} num-server-rounds={rounds} timing-file='{timing}'"
        submit = subprocess.run(
            [str(BIN / "flwr"), "run", str(app), "bench", "--run-config", config],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=work,
        )
        if submit.returncode != 0:
            raise RuntimeError(f"flwr run failed:\n{submit.stdout}\n{submit.stderr}")
        wait_for_rounds(timing, rounds, timeout=1800, procs=procs)
        return read_rounds(timing)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_fedbox_plain(app: Path, floats: int, rounds: int, work: Path) -> list[float]:
    """fedbox without end-to-end encryption, like the two Flower engines here."""
    return run_fedbox(app, floats, rounds, work, "--no-encrypt")


ENGINES = {
    "fedbox": run_fedbox,
    "fedbox-plain": run_fedbox_plain,
    "simulation": run_simulation,
    "deployment": run_deployment,
}


IDLE_MEMORY = """\
import os, sys
from pathlib import Path
from fedbox.cli.fl_options import load_app
from fedbox.fl.simulate import InProcessClients, introduce_participants, plan_simulation

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

app, config = load_app(Path(sys.argv[1]), [])
plan = plan_simulation(app, config, clients=int(sys.argv[2]), root=sys.argv[3])
introduce_participants(plan)
before = rss()
host = InProcessClients(plan)
print((rss() - before) / int(sys.argv[2]))
host.close()
"""


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def idle_client_bytes(app: Path, clients: int, work: Path) -> float:
    """RSS growth per virtual client while ``clients`` of them start and wait (Linux)."""
    result = subprocess.run(
        [sys.executable, "-c", IDLE_MEMORY, str(app), str(clients), str(work / "idle-root")],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"idle clients failed:\n{result.stderr[-3000:]}")
    return float(result.stdout.split()[-1])


def many_clients(app: Path, clients: int, rounds: int, work_root: Path) -> None:
    """fedbox's in-process clients and Flower's simulation engine with ``clients``
    virtual clients: ms per client message, and the memory of an idle virtual client."""
    floats = SIZES["40KB"]
    runs = {
        "fedbox --inprocess": lambda w: run_fedbox(
            app, floats, rounds, w, "--inprocess", clients=clients
        ),
        "flwr simulation": lambda w: run_simulation(app, floats, rounds, w, clients),
    }
    seconds: dict[str, float] = {}
    for name, run in runs.items():
        work = work_root / name.split()[0]
        work.mkdir()
        started = time.monotonic()
        cpu_before = _children_cpu()
        try:
            per_round = run(work)
        except Skipped as exc:
            print(f"{name:>20}: skipped ({exc})", flush=True)
            continue
        except Exception as exc:  # report and go on
            print(f"{name:>20}: FAILED {textwrap.shorten(str(exc), 300)}", flush=True)
            continue
        seconds[name] = steady(per_round)
        detail = " ".join(f"{s:.2f}" for s in per_round)
        print(
            f"{name:>20}: {steady(per_round) / clients * 1000:.2f} ms per client message, "
            f"{steady(per_round):.2f} s/round (rounds: {detail}; "
            f"wall {time.monotonic() - started:.1f} s with start-up)",
            flush=True,
        )
        cpu_ms = (_children_cpu() - cpu_before) / (clients * rounds) * 1000
        print(
            f"{'':>20}  CPU {cpu_ms:.2f} ms per client message (the whole command, start-up "
            "included; steadier than wall time on a busy machine)",
            flush=True,
        )
    if len(seconds) == len(runs):
        ratio = seconds["fedbox --inprocess"] / seconds["flwr simulation"]
        print(f"{'fedbox / flwr sim':>20}: {ratio:.2f}x the time per client message")
    idle = work_root / "idle"
    idle.mkdir()
    per_client = idle_client_bytes(app, clients, idle)
    kib = per_client / 1024
    print(f"{'idle virtual client':>20}: {kib:.0f} KB of RSS each ({clients} clients)")
    print("\ntargets (issue 20): <= 2 ms per client message, <= 1 MB per idle virtual client")


def file_creation_us(work_root: Path, folders: int = 200, files: int = 10) -> float:
    """Microseconds to create one empty file (or folder) under ``work_root`` now, laid out
    as a round's messages are: the state of the file system the run meets, printed
    beside its figures.

    Every message is a new file. ext4 without a journal (this machine's ``/``) passes
    over each inode freed in the last minutes when it allocates one: after ~50,000
    deletions (one such benchmark's clean-up) a file takes 0.2-0.9 ms to create instead
    of ~30 us, for minutes, and a round of 2,000 new files slows by up to a second. It
    passes over those of its own group of inodes only, so a few thousand deletions nearby
    show here more than in the run, which spreads over many groups. The files stay until
    the work dir goes: deleting them would add to what it measures.
    """
    started = time.perf_counter()
    for i in range(folders):
        folder = work_root / "file-creation" / str(i)
        folder.mkdir(parents=True)
        for j in range(files):
            (folder / str(j)).touch(exist_ok=False)
    return (time.perf_counter() - started) / (folders * (files + 1)) * 1e6


def report_file_creation(work_root: Path) -> None:
    us = file_creation_us(work_root)
    print(
        f"{'file system':>20}: {us:.0f} us per new file in {work_root.parent} now (a quiet "
        f"disk: ~{QUIET_CREATE_US} us; ext4 without a journal takes up to ~900 us for "
        "minutes after many deletions, and rounds slow with it)",
        flush=True,
    )


def steady(per_round: list[float]) -> float:
    """Median round time without the first round (start-up, imports, connections)."""
    rest = per_round[1:] or per_round
    return statistics.median(rest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sizes", default="40KB,4MB,40MB")
    parser.add_argument("--engines", default="fedbox,simulation,deployment")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="make the work dir under this folder (default: the system's temporary folder)",
    )
    parser.add_argument(
        "--clients", type=int, help="many virtual clients in one process (40 KB model)"
    )
    args = parser.parse_args()
    if args.work_dir is not None and not args.work_dir.is_dir():
        parser.error(f"--work-dir {args.work_dir}: no such folder")
    if args.clients is not None:
        work_root = Path(tempfile.mkdtemp(prefix="fedbox-bench-", dir=args.work_dir))
        try:
            report_file_creation(work_root)
            many_clients(write_app(work_root), args.clients, args.rounds, work_root)
        finally:
            if not args.keep:
                shutil.rmtree(work_root, ignore_errors=True)
        return 0
    sizes = [s.strip() for s in args.sizes.split(",")]
    engines = [e.strip() for e in args.engines.split(",")]
    work_root = Path(tempfile.mkdtemp(prefix="fedbox-bench-", dir=args.work_dir))
    app = write_app(work_root)
    report_file_creation(work_root)
    results: dict[tuple[str, str], float | str] = {}
    for size in sizes:
        for engine in engines:
            work = work_root / f"{engine}-{size}"
            work.mkdir()
            started = time.monotonic()
            try:
                per_round = ENGINES[engine](app, SIZES[size], args.rounds, work)
                results[size, engine] = steady(per_round)
                detail = " ".join(f"{s:.3f}" for s in per_round)
                print(
                    f"{engine:>10} {size:>5}: {steady(per_round):.3f} s/round "
                    f"(rounds: {detail}; wall {time.monotonic() - started:.1f} s)",
                    flush=True,
                )
            except Skipped as exc:
                results[size, engine] = f"skipped: {exc}"
                print(f"{engine:>10} {size:>5}: skipped ({exc})", flush=True)
            except Exception as exc:  # report and go on with the other engines
                results[size, engine] = f"failed: {str(exc).splitlines()[0]}"
                print(
                    f"{engine:>10} {size:>5}: FAILED {textwrap.shorten(str(exc), 300)}", flush=True
                )
    print()
    print(
        f"{'model':>6} | {'fedbox':>9} | {'flwr sim':>9} | {'flwr dep':>9} | "
        f"{'fedbox/sim':>10} | {'fedbox/dep':>10}"
    )
    for size in sizes:
        row = [results.get((size, e)) for e in ("fedbox", "simulation", "deployment")]
        cells = [f"{v:9.3f}" if isinstance(v, float) else f"{'-':>9}" for v in row]
        ratio = [
            f"{row[0] / v:10.2f}"
            if isinstance(row[0], float) and isinstance(v, float)
            else f"{'-':>10}"
            for v in row[1:]
        ]
        print(f"{size:>6} | " + " | ".join(cells) + " | " + " | ".join(ratio))
    print(
        "\nseconds per round, steady state (median of rounds 2..N); targets: "
        "fedbox <= 0.1x deployment, <= 1.0x simulation"
    )
    for key, value in results.items():
        if isinstance(value, str):
            print(f"  {key[1]} {key[0]}: {value}")
    if args.keep:
        print(f"work dir kept: {work_root}")
    else:
        shutil.rmtree(work_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
