"""1 KB RPC round trip over each remote store, next to that store's own PUT+GET; and the
digits FedAvg round time over each store, next to the same round over a local folder.

Run: ``.venv/bin/python benchmarks/remote_store.py [--calls 100] [--stores memory,s3,webdav,sftp]
[--rounds 6] [--clients 3] [--no-digits] [--first-contact [--trials 10]]``

Each participant runs in its own process, as peers on separate machines do: the storage
server on 127.0.0.1 (moto S3, wsgidav WebDAV, asyncssh SFTP:
``tests/remote_servers.py``), the fedbox server Box with the echo app (this script's
hidden ``_serve-echo`` sub-command), and the calling Box (this process). In one process
the server's watcher and handler threads and the caller's lookups would compete for the
GIL and inflate the turnaround. The exception is ``memory://``: that store lives in one
process, so its server Box runs in a thread of the caller's process, as before.
For each store, measured in the same run:

- ``PUT+GET``: the backend's own write then read of 1 KB, one request each where the
  backend allows (``Backend.upload`` and ``Backend.read``: on S3 one PUT and one GET,
  not s3fs's HEAD + GET), no fedbox code in the path;
- ``poll``: one listing as the watcher makes it;
- ``rpc p50/p95``: ``send`` + ``wait`` of a 1 KB echo between two Boxes, each on its own
  RemoteStore. Two rows: ``b2b`` sends each call as soon as the last one is answered;
  ``random`` first pauses a random time under one poll interval. Back-to-back calls
  lock onto the server's poll schedule, so a whole row meets the schedule at one phase
  and its p50 depends on where the first call happened to land; random pauses meet it
  at every phase, as requests from independent senders do.

Target: rpc p50 <= 2 x PUT+GET + the minimum poll interval. A round trip is two hops:
the server finds a request at its next listing (half an interval on average, then the
listing), and the caller looks its reply up by name (``AdaptivePollWatcher.expect``).

The digits table runs ``fedbox simulate examples/digits --root URL`` (client processes,
encryption on, options in ``$FEDBOX_STORAGE_OPTIONS``) and once with ``--root`` a local
folder, and reads the seconds of each round (train + evaluate) from its table. Round 1
includes start-up and key exchange, so the figure is the median of the other rounds.
``memory://`` cannot carry a simulation (it lives in one process) and has no digits row.

``--first-contact`` (issue 20) measures instead the first request of a new sender: a
store without file events finds a new sender only when it lists the folder names. The
echo server is kept polling at its minimum interval by a known sender (one call just
before each trial); a new identity then sends its first request, after a random pause
under one poll interval, and the known sender one more. Target: the first request's
round trip within the known sender's target plus one listing (2 x PUT+GET + the minimum
poll interval + ``poll``), not the ``max_poll_interval`` (2 s) of a periodic refresh.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fedbox.datasite.paths import OUTBOX_PREFIX, request_path, response_path
from fedbox.datasite.workspace import Workspace
from fedbox.rpc import Box
from fedbox.store import DEFAULT_MIN_POLL_INTERVAL, RemoteStore

REPO = Path(__file__).resolve().parents[1]
SERVERS = REPO / "tests" / "remote_servers.py"
DIGITS = REPO / "examples" / "digits"
APP = "bench_app"
CLIENT, SERVER = "client@bench.org", "server@bench.org"
SERVE_ECHO = "_serve-echo"  # hidden sub-command: the echo server Box in its own process


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _inbox(name: str) -> bool:
    """The server's inbox folders, as ``Box`` watches them."""
    return name.startswith(OUTBOX_PREFIX) and name.endswith(f"_to_{SERVER}")


def _start(kind: str, work: Path) -> tuple[str, dict[str, Any], subprocess.Popen[str] | None]:
    if kind == "memory":
        return "memory://bench", {}, None
    proc = subprocess.Popen(
        [sys.executable, str(SERVERS), kind, str(work / kind)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return f"{info['url']}/bench-{uuid.uuid4().hex[:8]}", info["options"], proc


def _timed(fn, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _put_get(store: RemoteStore, body: bytes, calls: int) -> float:
    """Median of the backend's own 1 KB write + read (one request each, no fedbox logic)."""
    store.put("ref/warm.bin", body)  # creates the folder (WebDAV/SFTP need it)
    fs, path = store.fs, f"{store.root}/ref/{uuid.uuid4().hex}.bin"

    def put_get() -> None:
        store.backend.upload(fs, path, body)
        store.backend.read(fs, path)

    return statistics.median(_timed(put_get, calls))


def _echo_box(store: RemoteStore) -> Box:
    """The server Box on ``store`` with the echo app started."""
    server = Box(store, Workspace.for_email(SERVER))
    server.app(APP).on_request("echo")(lambda req: req.body)
    server.app(APP).start()
    return server


def _serve_echo() -> None:
    """The ``_serve-echo`` sub-command: read ``{"url", "options"}`` as one JSON line on
    stdin, serve the echo app, say ``ready`` on stdout, and stop when stdin closes (the
    parent closed it, or died)."""
    logging.basicConfig(level=logging.WARNING)
    spec = json.loads(sys.stdin.readline())
    with _echo_box(RemoteStore(spec["url"], **spec["options"])):
        print("ready", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()


@contextlib.contextmanager
def _echo_server(url: str, options: dict[str, Any]) -> Iterator[RemoteStore | None]:
    """The echo server for the duration of the block: in its own process, or for
    ``memory://`` in a thread of this one (yielding its store for the caller to share)."""
    if url.startswith("memory://"):
        store = RemoteStore(url, **options)
        with _echo_box(store):
            yield store
        return
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), SERVE_ECHO],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps({"url": url, "options": options}) + "\n")
        proc.stdin.flush()
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"echo server exited ({proc.wait(timeout=30)}) before ready")
        yield None
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the server's cue to stop
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _rpc(url: str, options: dict[str, Any], pause: float, body: bytes, calls: int):
    """RPC round trips (each after a random pause under ``pause`` s) to the echo server,
    and the median cost of one of the server's poll listings (made from this process)."""
    with _echo_server(url, options) as server_store:
        shared = {"fs": server_store.fs} if server_store is not None else {}
        with (
            Box(RemoteStore(url, **options, **shared), Workspace.for_email(CLIENT)) as client,
            RemoteStore(url, **options, **shared) as lister_store,
        ):
            app = client.app(APP)
            app.send(SERVER, "echo", body).wait(60)
            rtts = []
            pauses = random.Random(0)
            for _ in range(calls):
                time.sleep(pauses.uniform(0, pause))
                start = time.perf_counter()
                fut = app.send(SERVER, "echo", body)
                response = fut.wait(60)
                rtts.append(time.perf_counter() - start)
                assert response.status == 200 and response.body == body
                # Untimed, what the cleanup job does later: answered messages leave the
                # store, so listings stay the size of the traffic in flight.
                client.store.delete(str(request_path(CLIENT, SERVER, APP, "echo", fut.id)))
                client.store.delete(str(response_path(CLIENT, SERVER, APP, "echo", fut.id)))
            with lister_store.watch("", (".request", ".response"), folders=_inbox) as watcher:
                poll = statistics.median(_timed(watcher._lister, 20))
    return rtts, poll


def _digits_rounds(
    root: str, scheme: str | None, options: dict[str, Any], rounds: int, clients: int
) -> list[float]:
    """Seconds of each digits round (train + evaluate) in one ``fedbox simulate`` run."""
    env = {**os.environ, "COLUMNS": "300"}
    env.pop("FEDBOX_STORAGE_OPTIONS", None)
    if scheme is not None:
        env["FEDBOX_STORAGE_OPTIONS"] = json.dumps({scheme: options})
    cmd = [
        *(sys.executable, "-m", "fedbox", "simulate", str(DIGITS), "--root", root),
        *("--clients", str(clients), "--run-config", f"num-server-rounds={rounds}"),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    per_round: dict[int, float] = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 9 and cells[1].isdigit() and cells[2] in ("train", "evaluate"):
            per_round[int(cells[1])] = per_round.get(int(cells[1]), 0.0) + float(cells[8])
    if len(per_round) != rounds:
        raise RuntimeError(f"expected {rounds} rounds in the output:\n{result.stdout}")
    return [per_round[r] for r in sorted(per_round)]


def _digits_table(
    stores: list[tuple[str, str, dict[str, Any]]], work: Path, rounds: int, clients: int
) -> None:
    print(
        f"\ndigits FedAvg, {clients} client processes, {rounds} rounds, encrypted; "
        "seconds per round (train + evaluate), median of rounds 2..N"
    )
    print(f"{'store':>7} {'round 1':>8} {'round':>7} {'min':>7} {'max':>7} {'vs folder':>10}")
    local = _digits_rounds(str(work / "digits-folder"), None, {}, rounds, clients)
    base = statistics.median(local[1:])

    def row(name: str, times: list[float]) -> None:
        steady = times[1:]
        p50 = statistics.median(steady)
        print(
            f"{name:>7} {times[0]:8.3f} {p50:7.3f} {min(steady):7.3f} {max(steady):7.3f}"
            f" {p50 / base:9.1f}x",
            flush=True,
        )

    row("folder", local)
    for kind, url, options in stores:
        row(kind, _digits_rounds(f"{url}-digits", kind, options, rounds, clients))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--stores", default="memory,s3,webdav,sftp")
    parser.add_argument("--rounds", type=int, default=6, help="digits rounds per run")
    parser.add_argument("--clients", type=int, default=3, help="digits client processes")
    parser.add_argument("--no-digits", action="store_true", help="only the 1 KB round trips")
    parser.add_argument(
        "--first-contact",
        action="store_true",
        help="only the first requests of new senders (issue 20), next to a known sender's",
    )
    parser.add_argument("--trials", type=int, default=10, help="new senders per store")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (round 1 is start-up)")
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="fedbox-remote-bench-"))
    os.environ["FEDBOX_HOME"] = str(work / "home")
    body = os.urandom(1024)
    min_poll = DEFAULT_MIN_POLL_INTERVAL
    if args.first_contact:
        _first_contact_table(args, work, body, min_poll)
        return
    print(f"1 KB echo, {args.calls} sequential calls per row, min poll {min_poll * 1e3:.0f} ms")
    print(
        f"{'store':>7} {'calls':>6} {'PUT+GET':>8} {'poll':>6} {'rpc p50':>8} {'rpc p95':>8}"
        f" {'target':>7} {'ok':>4}   (ms)"
    )
    procs: list[subprocess.Popen[str]] = []
    digits_stores: list[tuple[str, str, dict[str, Any]]] = []
    try:
        _rpc_table(args, work, body, min_poll, procs, digits_stores)
        print(
            "reference: the system fedbox replaces polls a drive every 2 s (~1000 ms mean per hop)"
        )
        if not args.no_digits:
            _digits_table(digits_stores, work, args.rounds, args.clients)
    finally:
        for proc in procs:
            proc.communicate("", timeout=30)


def _rpc_table(
    args: argparse.Namespace,
    work: Path,
    body: bytes,
    min_poll: float,
    procs: list[subprocess.Popen[str]],
    digits_stores: list[tuple[str, str, dict[str, Any]]],
) -> None:
    """The 1 KB table; servers stay up (in ``procs``) for the digits runs."""
    for kind in args.stores.split(","):
        url, options, proc = _start(kind, work)
        if proc is not None:
            procs.append(proc)
            digits_stores.append((kind, url, options))
        with RemoteStore(url, **options) as ref_store:
            ref = _put_get(ref_store, body, args.calls)
        target = 2 * ref + min_poll
        for spacing, pause in (("b2b", 0.0), ("random", min_poll)):
            rtts, poll = _rpc(url, options, pause, body, args.calls)
            p50 = statistics.median(rtts)
            print(
                f"{kind:>7} {spacing:>6} {ref * 1e3:8.2f}"
                f" {poll * 1e3:6.2f} {p50 * 1e3:8.2f} {percentile(rtts, 0.95) * 1e3:8.2f}"
                f" {target * 1e3:7.2f} {'yes' if p50 <= target else 'NO':>4}",
                flush=True,
            )


def _first_contact(
    url: str, options: dict[str, Any], body: bytes, trials: int, pause: float
) -> tuple[list[float], list[float], float]:
    """Round trips of ``trials`` new senders' first requests and of a known sender's
    request after each, the server kept polling fast; and the median poll listing."""
    with _echo_server(url, options) as server_store:
        shared = {"fs": server_store.fs} if server_store is not None else {}

        def box(email: str) -> Box:
            return Box(RemoteStore(url, **options, **shared), Workspace.for_email(email))

        def timed(app: Any) -> float:
            start = time.perf_counter()
            response = app.send(SERVER, "echo", body).wait(60)
            assert response.status == 200 and response.body == body
            return time.perf_counter() - start

        firsts, knowns = [], []
        pauses = random.Random(0)
        with box(CLIENT) as known, RemoteStore(url, **options, **shared) as lister_store:
            timed(known.app(APP))
            for _ in range(trials):
                with box(f"new-{uuid.uuid4().hex[:8]}@bench.org") as newcomer:
                    newcomer.store.exists("warm")  # connected (lazily, on first use) untimed
                    timed(known.app(APP))  # the server polls at its fastest now
                    time.sleep(pauses.uniform(0, pause))
                    firsts.append(timed(newcomer.app(APP)))
                    knowns.append(timed(known.app(APP)))
            with lister_store.watch("", (".request", ".response"), folders=_inbox) as watcher:
                poll = statistics.median(_timed(watcher._lister, 20))
    return firsts, knowns, poll


def _first_contact_table(
    args: argparse.Namespace, work: Path, body: bytes, min_poll: float
) -> None:
    print(
        f"first request of a new sender (1 KB echo), {args.trials} new senders per store, "
        f"min poll {min_poll * 1e3:.0f} ms, server kept busy by a known sender"
    )
    print(
        f"{'store':>7} {'PUT+GET':>8} {'poll':>6} {'known p50':>10} {'first p50':>10}"
        f" {'first max':>10} {'target':>7} {'ok':>4}   (ms)"
    )
    procs: list[subprocess.Popen[str]] = []
    try:
        for kind in args.stores.split(","):
            url, options, proc = _start(kind, work)
            if proc is not None:
                procs.append(proc)
            with RemoteStore(url, **options) as ref_store:
                ref = _put_get(ref_store, body, min(args.calls, 20))
            firsts, knowns, poll = _first_contact(url, options, body, args.trials, min_poll)
            target = 2 * ref + min_poll + poll
            p50 = statistics.median(firsts)
            print(
                f"{kind:>7} {ref * 1e3:8.2f} {poll * 1e3:6.2f}"
                f" {statistics.median(knowns) * 1e3:10.2f} {p50 * 1e3:10.2f}"
                f" {max(firsts) * 1e3:10.2f} {target * 1e3:7.2f}"
                f" {'yes' if p50 <= target else 'NO':>4}",
                flush=True,
            )
    finally:
        for proc in procs:
            proc.communicate("", timeout=30)


if __name__ == "__main__":
    if sys.argv[1:] == [SERVE_ECHO]:
        _serve_echo()
    else:
        main()
