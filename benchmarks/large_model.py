"""Large models: FedAvg rounds over fedbox files vs an in-process grid with Flower's serializer.

FedAvg (``fedbox.fl.FedAvg``, which averages in place; ``--strategy flower`` for Flower's
own, same model, more memory), 3 clients, trivial training (add 1 to every weight), with
models of 4 MB, 40 MB and 400 MB (``--sizes``; a ``3GB`` size is accepted too), run in one
invocation by two engines:

``fedbox``
    A folder store; the aggregator (a FileGrid) and each client (a ClientNode) are
    separate processes, as in ``fedbox simulate``, with the allocator setting that
    ``fedbox run`` and ``fedbox simulate`` apply. Files are not fsync'd (``--fsync`` to
    change that); ``--encrypt`` turns end-to-end encryption on.
``flower``
    One process: a minimal Flower ``Grid`` that hands each message to the ClientApp
    after a round trip through Flower's serializer
    (``message_to_proto(m).SerializeToString()`` then ``message_from_proto``), and the
    reply back the same way: what Flower's own transports pay to serialise, without
    any network. This is issue 6's reference, with the C library's default allocator.
``flower-keep``
    The same, with the allocator setting fedbox applies to its own processes
    (``fedbox.fl.memory.keep_freed_memory``): freed model-sized buffers are reused
    instead of being unmapped and faulted in again. On a VM where fresh pages are
    expensive this changes the baseline a lot, so the like-for-like ratio is printed
    too.
``files``
    No Flower, no fedbox: the file I/O a round needs at the least (the model written
    to a new file and read by each client, a reply file per client written and read),
    in one process. Where new page-cache pages are expensive this floor, not the
    serialisation, bounds a round.

Per size and engine it prints seconds per round (median after the first round; FedAvg's
``evaluate_fn`` stamps the time after every round), bytes written per round (bytes
added under the store root, counting each inode once: a reflinked copy counts as written),
the aggregator's peak RSS (Linux ``VmHWM`` of the aggregator process), and the ratios
against issue 6's targets: a 40 MB round <= 0.5 s and >= 4x faster than the Flower
serializer, bytes per round <= (2 + clients) x model, peak RSS <= (clients + 2) x model +
300 MB.

``--app stock`` runs the app users write instead (issue 20): a ``ServerApp`` whose main
starts Flower's stock ``flwr.serverapp.strategy.FedAvg`` on a model of two float32 arrays
(half the size each), and the ClientApp above (``to_numpy_ndarrays()``, new arrays, a new
``ArrayRecord``), encrypted unless ``--no-encrypt``, as ``fedbox simulate`` runs apps. The
``flower`` engines run the same ServerApp, so the ratio is like for like.

Usage: ``.venv/bin/python benchmarks/large_model.py [--sizes 4MB,40MB,400MB] [--rounds 5]
[--clients 3] [--engines flower,flower-keep,files,fedbox] [--train add|echo]
[--encrypt|--no-encrypt] [--fsync] [--chunk-threshold BYTES] [--strategy fedbox|flower]
[--app bench|stock]``
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SIZES = {"4MB": 4 * 10**6, "40MB": 40 * 10**6, "400MB": 400 * 10**6, "3GB": 3 * 10**9}
AGGREGATOR = "aggregator@bench.org"
TARGET_SECONDS_40MB = 0.5
TARGET_SPEEDUP = 4.0


def client_emails(n: int) -> list[str]:
    return [f"client{i}@bench.org" for i in range(n)]


def client_app(train_mode: str = "add") -> Any:
    """Trivial training. ``add``: every weight + 1, as a new model (through numpy, as
    apps do); ``echo``: the received arrays sent back untouched (transport cost only,
    and client memory of one model: what lets a 3 GB round fit in RAM)."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Any) -> Message:
        if train_mode == "echo":
            arrays = msg.content["arrays"]
        else:
            arrays = ArrayRecord([a + 1 for a in msg.content["arrays"].to_numpy_ndarrays()])
        content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 1})})
        return Message(content, reply_to=msg)

    return app


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def store_bytes(root: Path) -> int:
    """Bytes of the files under ``root``, each inode once (hard links share their bytes)."""
    seen: dict[tuple[int, int], int] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            try:
                st = os.stat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def quiet_flower() -> None:
    """Flower logs every round at INFO (and warns that evaluation is off), and each fresh
    identity of an encrypted run warns of its first contact; the table is the output."""
    import logging

    logging.getLogger("flwr").setLevel(logging.ERROR)
    logging.getLogger("fedbox.rpc.sealing").setLevel(logging.ERROR)


def run_fedavg(
    grid: Any, nbytes: int, rounds: int, clients: int, strategy: str, app: str = "bench"
) -> list[float]:
    """FedAvg for ``rounds`` rounds; the time after each (round 0: before the first).

    ``app="stock"``: a ServerApp whose main starts Flower's FedAvg on two arrays, called
    as Flower calls it (``app(grid, context)``)."""
    quiet_flower()
    import numpy as np
    from flwr.app import ArrayRecord, Context, MetricRecord, RecordDict
    from flwr.serverapp import ServerApp
    from flwr.serverapp import strategy as flower_strategies

    from fedbox.fl import FedAvg as InPlaceFedAvg

    stamps: list[float] = []

    def stamp(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        stamps.append(time.perf_counter())
        return MetricRecord({"round": server_round})

    def initial() -> ArrayRecord:
        """Built in a call so that only the strategy holds it (fedbox's lets it go)."""
        rng = np.random.default_rng(0)
        if app == "stock":
            half = nbytes // 8
            return ArrayRecord([rng.random(half, dtype=np.float32) for _ in range(2)])
        return ArrayRecord([rng.random(nbytes // 4, dtype=np.float32)])

    if app == "bench":
        fedavg = InPlaceFedAvg if strategy == "fedbox" else flower_strategies.FedAvg
        fedavg(fraction_evaluate=0.0, min_train_nodes=clients, min_available_nodes=clients).start(
            grid=grid, initial_arrays=initial(), num_rounds=rounds, evaluate_fn=stamp
        )
        return [b - a for a, b in itertools.pairwise(stamps)]

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Any, context: Context) -> None:
        flower_strategies.FedAvg(
            fraction_evaluate=0.0, min_train_nodes=clients, min_available_nodes=clients
        ).start(grid=grid, initial_arrays=initial(), num_rounds=rounds, evaluate_fn=stamp)

    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
    server_app(grid, context)
    return [b - a for a, b in itertools.pairwise(stamps)]


# -- fedbox ----------------------------------------------------------------------------------


def _serve_client(
    root: str,
    home: str,
    app_name: str,
    email: str,
    index: int,
    n: int,
    opts: dict,
    train_mode: str,
    ready: Any,
) -> None:
    os.environ["FEDBOX_HOME"] = home
    import fedbox
    from fedbox.fl.client import ClientNode, node_config_for
    from fedbox.fl.memory import keep_freed_memory

    keep_freed_memory()
    quiet_flower()
    box = fedbox.connect(root, email, **opts)
    node = ClientNode(
        box, app_name, lambda: client_app(train_mode), node_config_for(index, n, None), fsync=False
    )
    node.start()
    ready.set()
    node.wait()
    node.stop()
    box.close()


def _aggregate(
    root: str,
    home: str,
    app_name: str,
    nbytes: int,
    rounds: int,
    clients: int,
    opts: dict,
    strategy: str,
    app: str,
    out: Any,
) -> None:
    os.environ["FEDBOX_HOME"] = home
    import fedbox
    from fedbox.fl.grid import FileGrid
    from fedbox.fl.memory import keep_freed_memory

    keep_freed_memory()
    quiet_flower()
    box = fedbox.connect(root, AGGREGATOR, **opts)
    grid = FileGrid(box.app(app_name), client_emails(clients), timeout=3600)
    before = store_bytes(Path(root))
    per_round = run_fedavg(grid, nbytes, rounds, clients, strategy, app)
    written = store_bytes(Path(root)) - before
    grid.stop_nodes(wait=30)
    box.close()
    out.put({"per_round": per_round, "written": written / rounds, "peak": peak_rss()})


def run_fedbox(
    work: Path,
    nbytes: int,
    rounds: int,
    clients: int,
    opts: dict,
    train_mode: str,
    strategy: str,
    app: str,
) -> dict:
    ctx = mp.get_context("spawn")
    root, home = work / "store", work / "home"
    root.mkdir(parents=True)
    app_name = f"{AGGREGATOR}_large_{int(time.time())}"
    readies, procs = [], []
    for i, email in enumerate(client_emails(clients)):
        ready = ctx.Event()
        args = (str(root), str(home), app_name, email, i, clients, opts, train_mode, ready)
        proc = ctx.Process(target=_serve_client, args=args, daemon=True)
        proc.start()
        readies.append(ready)
        procs.append(proc)
    for ready in readies:
        if not ready.wait(120):
            raise RuntimeError("a client did not start")
    out = ctx.Queue()
    agg = ctx.Process(
        target=_aggregate,
        args=(str(root), str(home), app_name, nbytes, rounds, clients, opts, strategy, app, out),
    )
    agg.start()
    result = out.get()
    agg.join(60)
    for proc in procs:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
    return result


# -- Flower's serializer, in process ----------------------------------------------------------


def _serde_grid(clients: int, train_mode: str) -> Any:
    from flwr.app import Context, Message, RecordDict
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.common.serde import message_from_proto, message_to_proto
    from flwr.proto.message_pb2 import Message as ProtoMessage
    from flwr.serverapp import Grid
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity

    def wire(message: Message) -> Message:
        data = message_to_proto(message).SerializeToString()
        return message_from_proto(ProtoMessage.FromString(data))

    class SerdeGrid(Grid):
        """Every message and reply makes a round trip through Flower's serializer."""

        def __init__(self) -> None:
            self.app = client_app(train_mode)
            self.contexts = {
                node: Context(
                    run_id=1,
                    node_id=node,
                    node_config={"partition-id": i, "num-partitions": clients},
                    state=RecordDict(),
                    run_config={},
                )
                for i, node in enumerate(range(1, clients + 1))
            }
            self.replies: dict[str, Message] = {}
            self.set_run(Run.create_empty(1))

        def set_run(self, run: Run) -> None:
            self._run = run
            TaskIdentity.run_id = run.run_id
            TaskIdentity.node_id = SUPERLINK_NODE_ID
            TaskIdentity.task_id = 1

        @property
        def run(self) -> Run:
            return self._run

        def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):  # type: ignore[no-untyped-def]
            return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

        def get_node_ids(self) -> Iterable[int]:
            return list(self.contexts)

        def push_messages(self, messages: Iterable[Message]) -> list[str]:
            ids = []
            for message in messages:
                msg_id = str(uuid.uuid4())
                message.metadata.__dict__["_message_id"] = msg_id
                received = wire(message)
                reply = self.app(received, self.contexts[received.metadata.dst_node_id])
                reply.metadata.__dict__["_message_id"] = str(uuid.uuid4())
                self.replies[msg_id] = wire(reply)
                ids.append(msg_id)
            return ids

        def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
            return [self.replies.pop(i) for i in message_ids if i in self.replies]

        def send_and_receive(self, messages: Iterable[Message], *, timeout=None):  # type: ignore[no-untyped-def]
            return self.pull_messages(self.push_messages(messages))

    return SerdeGrid()


def _flower(
    nbytes: int,
    rounds: int,
    clients: int,
    train_mode: str,
    keep_memory: bool,
    strategy: str,
    app: str,
    out: Any,
) -> None:
    if keep_memory:
        from fedbox.fl.memory import keep_freed_memory

        keep_freed_memory()
    grid = _serde_grid(clients, train_mode)
    per_round = run_fedavg(grid, nbytes, rounds, clients, strategy, app)
    out.put({"per_round": per_round, "written": 0, "peak": peak_rss()})


def run_flower(
    nbytes: int,
    rounds: int,
    clients: int,
    train_mode: str,
    keep_memory: bool,
    strategy: str,
    app: str,
) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    args = (nbytes, rounds, clients, train_mode, keep_memory, strategy, app, out)
    proc = ctx.Process(target=_flower, args=args)
    proc.start()
    result = out.get()
    proc.join(60)
    return result


# -- the bare file I/O of a round ---------------------------------------------------------------


def _files(work: str, nbytes: int, rounds: int, clients: int, out: Any) -> None:
    """What a round's bytes cost through the page cache alone, in one process: write the
    model to a new file, read it once per client, write one new file per client, read
    those back. No hashing, no encoding, files kept (as messages are until cleanup)."""
    import numpy as np

    model = np.random.default_rng(0).random(nbytes // 4, dtype=np.float32)
    buffer = bytearray(model.nbytes)
    per_round = []
    for r in range(rounds + 1):
        start = time.perf_counter()
        names = [f"{work}/b{r}"] + [f"{work}/r{r}-{c}" for c in range(clients)]
        for i, name in enumerate(names):
            with open(name, "wb") as f:
                f.write(model.data)
            for _ in range(clients if i == 0 else 1):
                with open(name, "rb") as f:
                    f.readinto(buffer)
        per_round.append(time.perf_counter() - start)
    out.put({"per_round": per_round[1:], "written": (clients + 1) * nbytes, "peak": peak_rss()})


def run_files(work: Path, nbytes: int, rounds: int, clients: int) -> dict:
    work.mkdir(parents=True)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_files, args=(str(work), nbytes, rounds, clients, out))
    proc.start()
    result = out.get()
    proc.join(60)
    return result


# -- report ------------------------------------------------------------------------------------


def steady(per_round: list[float]) -> float:
    rest = per_round[1:] or per_round
    return statistics.median(rest)


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e7 else f"{n / 1e6:,.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4MB,40MB,400MB")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--engines", default="flower,flower-keep,files,fedbox")
    parser.add_argument("--train", choices=("add", "echo"), default="add")
    parser.add_argument(
        "--encrypt",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="end-to-end encryption (default: on for --app stock, off otherwise)",
    )
    parser.add_argument("--fsync", action="store_true")
    parser.add_argument("--chunk-threshold", type=int, default=None)
    parser.add_argument(
        "--strategy",
        choices=("fedbox", "flower"),
        default="fedbox",
        help="whose FedAvg every engine runs (the same model either way; fedbox's "
        "aggregates in place, Flower's holds up to three more models while it averages)",
    )
    parser.add_argument(
        "--app",
        choices=("bench", "stock"),
        default="bench",
        help="stock: a ServerApp with Flower's own FedAvg on two arrays, encrypted by "
        "default (implies --strategy flower)",
    )
    parser.add_argument("--work", default=None, help="folder for the stores (default: a temp)")
    args = parser.parse_args()
    engines = args.engines.split(",")
    if args.app == "stock":
        args.strategy = "flower"
    if args.encrypt is None:
        args.encrypt = args.app == "stock"
    opts = {
        "encrypt": args.encrypt,
        "fsync": args.fsync,
        "chunk_threshold": args.chunk_threshold,
    }
    base = Path(args.work or tempfile.mkdtemp(prefix="fedbox-large-"))
    print(
        f"app {args.app}, FedAvg ({args.strategy}'s), {args.clients} clients, "
        f"{args.rounds} rounds, "
        f"training: {args.train}; fedbox "
        f"{'encrypted' if args.encrypt else 'plaintext'}, fsync {'on' if args.fsync else 'off'}"
    )
    header = (
        f"{'model':>7} {'engine':>11} {'s/round':>8} {'vs flower':>9} "
        f"{'written/round':>14} {'x model':>7} {'agg peak RSS':>13} {'x model':>7} "
        f"{'target RSS':>11}"
    )
    print(header)
    print("-" * len(header))
    results: dict[tuple[str, str], dict] = {}
    for size in args.sizes.split(","):
        nbytes = SIZES[size]
        for engine in engines:
            work = base / f"{size}-{engine}"
            try:
                if engine == "fedbox":
                    res = run_fedbox(
                        work,
                        nbytes,
                        args.rounds,
                        args.clients,
                        opts,
                        args.train,
                        args.strategy,
                        args.app,
                    )
                elif engine == "files":
                    res = run_files(work, nbytes, args.rounds, args.clients)
                else:
                    keep = engine == "flower-keep"
                    res = run_flower(
                        nbytes, args.rounds, args.clients, args.train, keep, args.strategy, args.app
                    )
            finally:
                shutil.rmtree(work, ignore_errors=True)
            results[(size, engine)] = res
            seconds = steady(res["per_round"])
            other = results.get((size, "flower"))
            ratio = (
                f"{steady(other['per_round']) / seconds:.1f}x"
                if other and engine == "fedbox"
                else "-"
            )
            target_rss = (args.clients + 2) * nbytes + 300e6
            written = res["written"]
            print(
                f"{size:>7} {engine:>11} {seconds:8.3f} {ratio:>9} "
                f"{_mb(written) if engine == 'fedbox' else '-':>14} "
                f"{written / nbytes if engine == 'fedbox' else 0:7.2f} "
                f"{_mb(res['peak']):>13} {res['peak'] / nbytes:7.2f} {_mb(target_rss):>11}",
                flush=True,
            )
    for size in args.sizes.split(","):
        fed = results.get((size, "fedbox"))
        if fed is None:
            continue
        line = f"{size}: fedbox {steady(fed['per_round']):.3f} s/round"
        for engine in ("flower", "flower-keep", "files"):
            if (size, engine) in results:
                other = steady(results[(size, engine)]["per_round"])
                line += f"; {engine} {other:.3f} s/round ({other / steady(fed['per_round']):.2f}x)"
        print(f"{line}; fedbox rounds: {', '.join(f'{s:.3f}' for s in fed['per_round'])}")
    if not args.work:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
