"""The hub at scale: simulated participants on websockets over two PostgreSQL + S3 hub
processes, beside one SQLite hub process under the same load.

Run: ``.venv/bin/python benchmarks/hub_scale.py [--participants 200] [--files 10000]
[--seconds 30] [--idle-seconds 60] [--only cluster,sqlite] [--rate 20] [--generators 2]`` (needs
the local PostgreSQL, ``$FEDBOX_TEST_POSTGRES``, and moto: see scripts/hub_cluster.py).

A participant is what a fedbox client is to the hub, without the crypto and the FL: a
login, a websocket on the change feed, and RPC over plain HTTP (write a ``.request`` in
its outbox to a peer, the peer is pushed the change, reads it and writes a ``.response``
that the caller is pushed and reads: four requests and two pushes per round trip).
Participants are paired and call each other in a closed loop for ``--seconds``; each
holds its socket on process ``i % N``, so half the round trips cross processes. Every
participant has one call out at all times, so the closed loop measures saturation: its
p50 is about participants / RPCs per second (Little's law), seconds with 200 of them
whatever the hub does; read its RPCs/s and CPU per request. The open loop that follows
(``--rate``, 20 RPCs/s by default) has calls due at that fixed rate whatever the answers
(each timed from when it was due): the latency a participant sees under a stated load.
The load comes from ``--generators`` processes (one alone saturated its core first).
``--files`` small files are stored first (the hub's size), spread over the datasites.

Figures: round trip p50/p99, RPCs/s and HTTP requests/s the hub(s) sustained, CPU per
hub process (share of one core over the window, from /proc), of PostgreSQL and moto, and
of this load generator (on a two-core machine they compete: read the figures as
relative); then the cost of idle participants: requests they send and hub CPU per
minute, with all of them connected and with a quarter of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from _common import percentile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from hub_cluster import local_cluster  # noqa: E402
from hub_process import NO_LOGIN_LIMITS, HubProcess  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_with_reaped(pid: int) -> float:
    """CPU seconds of a process and of every child it has reaped: a parent that forks a
    process per connection (PostgreSQL's postmaster) then keeps the CPU of those gone."""
    fields = _stat(pid)
    return sum(int(f) for f in fields[11:15]) / TICKS


@dataclass
class Participant:
    email: str
    base: str
    token: str = ""
    pending: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    socket: object = None
    answering: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass
class Tally:
    requests: int = 0
    rtts: list[float] = field(default_factory=list)
    timeouts: int = 0


async def _send(http: httpx.AsyncClient, method: str, url: str, **kw: object) -> httpx.Response:
    """A request retried on a dropped connection (an overloaded hub may close one)."""
    for attempt in range(5):
        try:
            return await http.request(method, url, **kw)  # type: ignore[arg-type]
        except httpx.TransportError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _headers(p: Participant) -> dict[str, str]:
    return {"Authorization": f"Bearer {p.token}"}


async def _gather(limit: int, jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


async def log_in(http: httpx.AsyncClient, people: list[Participant]) -> None:
    async def one(p: Participant) -> None:
        code = (await http.post(f"{p.base}/api/v1/auth/code", json={"email": p.email})).json()
        answer = await http.post(
            f"{p.base}/api/v1/auth/token", json={"email": p.email, "code": code["code"]}
        )
        p.token = answer.raise_for_status().json()["access_token"]

    await _gather(20, [lambda p=p: one(p) for p in people])


async def seed(http: httpx.AsyncClient, people: list[Participant], files: int) -> float:
    """Store ``files`` small files over the participants' datasites; files/s."""

    async def one(n: int) -> None:
        p = people[n % len(people)]
        url = f"{p.base}/api/v1/files/datasites/{p.email}/data/f{n}.bin"
        answer = await _send(http, "PUT", url, content=os.urandom(64), headers=_headers(p))
        answer.raise_for_status()

    start = time.perf_counter()
    await _gather(32, [lambda n=n: one(n) for n in range(files)])
    return files / (time.perf_counter() - start)


async def follow(p: Participant, after: int, http: httpx.AsyncClient, tally: Tally) -> None:
    """Read p's pushed feed: answer requests to p, resolve p's own round trips."""
    ws = p.base.replace("http", "ws", 1) + f"/api/v1/changes/ws?after={after}"
    async with websockets.connect(ws, additional_headers=_headers(p), max_size=None) as sock:
        p.socket = sock
        async for message in sock:
            for change in json.loads(message)["changes"]:
                path = change["path"]
                if change["op"] != "put":
                    continue
                if path.endswith(".request") and f"_to_{p.email}/" in path:
                    task = asyncio.create_task(answer(p, path, http, tally))
                    p.answering.add(task)  # held until done, or the loop may drop it
                    task.add_done_callback(p.answering.discard)
                elif path.endswith(".response") and f"_to_{p.email}/" in path:
                    done = p.pending.pop(path.rsplit("/", 1)[1].split(".")[0], None)
                    if done is not None and not done.done():
                        done.set_result(None)


async def answer(p: Participant, path: str, http: httpx.AsyncClient, tally: Tally) -> None:
    body = (await _send(http, "GET", f"{p.base}/api/v1/files/{path}", headers=_headers(p))).content
    caller = path.split("/", 1)[0].removeprefix("syft_outbox_inbox_").split("_to_")[0]
    name = path.rsplit("/", 1)[1].replace(".request", ".response")
    reply = f"syft_outbox_inbox_{p.email}_to_{caller}/bench/rpc/{name}"
    await _send(http, "PUT", f"{p.base}/api/v1/files/{reply}", content=body, headers=_headers(p))
    tally.requests += 2


async def rpc(
    p: Participant, peer: Participant, http: httpx.AsyncClient, tally: Tally, start: float
) -> None:
    """One round trip from p to peer; its time counts from ``start`` (for the open loop,
    when it was due: a generator falling behind shows as latency, not a lower rate)."""
    rid = uuid.uuid4().hex
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    p.pending[rid] = done
    path = f"syft_outbox_inbox_{p.email}_to_{peer.email}/bench/rpc/{rid}.request"
    await _send(
        http, "PUT", f"{p.base}/api/v1/files/{path}", content=b"x" * 256, headers=_headers(p)
    )
    try:
        await asyncio.wait_for(done, timeout=60)
    except TimeoutError:
        p.pending.pop(rid, None)
        tally.timeouts += 1
        return
    back = f"syft_outbox_inbox_{peer.email}_to_{p.email}/bench/rpc/{rid}.response"
    await _send(http, "GET", f"{p.base}/api/v1/files/{back}", headers=_headers(p))
    tally.requests += 2
    tally.rtts.append(time.perf_counter() - start)


async def call_loop(
    p: Participant, peer: Participant, http: httpx.AsyncClient, tally: Tally, until: float
) -> None:
    """Closed loop: the next call as soon as the last one is answered (saturation)."""
    while time.monotonic() < until:
        await rpc(p, peer, http, tally, time.perf_counter())


async def open_loop(
    pairs: list[tuple[Participant, Participant]],
    http: httpx.AsyncClient,
    rate: float,
    seconds: float,
) -> dict:
    """Open loop: ``rate`` calls per second, due at fixed times whatever the answers,
    spread over the pairs; latency under a stated load rather than at saturation."""
    tally, calls = Tally(), []
    t0 = time.perf_counter()
    for k in range(int(rate * seconds)):
        due = t0 + k / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        a, b = pairs[k % len(pairs)]
        calls.append(asyncio.create_task(rpc(a, b, http, tally, due)))
    await asyncio.gather(*calls)
    return {"rtts": tally.rtts, "timeouts": tally.timeouts, "wall": time.perf_counter() - t0}


def _open_summary(rate: float, parts: list[dict]) -> dict:
    """The open loop's figures over every generator process's share."""
    rtts = [t for part in parts for t in part["rtts"]] or [float("nan")]
    answered = sum(len(part["rtts"]) for part in parts)
    return {
        "offered_rpcs_per_s": rate,
        "answered_rpcs_per_s": round(answered / max(part["wall"] for part in parts), 1),
        "rpc_p50_ms": round(1000 * statistics.median(rtts), 1),
        "rpc_p99_ms": round(1000 * percentile(rtts, 0.99), 1),
        "timeouts": sum(part["timeouts"] for part in parts),
    }


def _cpu(pids: Sequence[int]) -> list[float]:
    return [cpu_seconds(pid) for pid in pids]


def _backing_cpu() -> dict[str, float]:
    """CPU seconds so far of what the hubs stand on: PostgreSQL, and moto (the S3
    stand-in, started by scripts/hub_cluster.py from this process).

    PostgreSQL runs a process per connection, and connections come and go: summing the
    live ``postgres`` processes alone lost those that exited between two samples (and
    printed a negative figure). Here each postmaster counts with the CPU of the backends
    it has reaped, plus its live children, so the sum only grows."""
    found = {"postgres": 0.0, "moto": 0.0}
    procs: dict[int, tuple[int, str, bytes]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            parent = int(_stat(int(proc.name))[1])
            comm = (proc / "comm").read_text().strip()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
        procs[int(proc.name)] = (parent, comm, cmdline)

    def postmaster(pid: int) -> bool:
        return procs.get(procs[pid][0], (0, "", b""))[1] != "postgres"

    # Postmasters first: a backend reaped after its parent's figure was read is missed
    # in this sample (and counted in the next), never counted twice.
    for pid in sorted(procs, key=lambda p: not postmaster(p)):
        _, comm, cmdline = procs[pid]
        try:
            if comm == "postgres":
                found["postgres"] += cpu_with_reaped(pid) if postmaster(pid) else cpu_seconds(pid)
            elif b"moto.server" in cmdline:
                found["moto"] += cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile: its CPU is in its parent's reaped share
    return found


@dataclass(frozen=True)
class Plan:
    """What every load-generator process does, in step with the others (a barrier
    between phases, so the main process reads CPU counters at the same moments)."""

    people: list[tuple[str, str, str]]
    """(email, hub URL, access token) of this process's participants, in pairs."""
    head: int
    seconds: float
    rate: float
    """This process's share of the open loop's RPCs per second (0: no open loop)."""
    idle_seconds: float


def generate(plan: Plan, barrier: Any, results: Any) -> None:
    """One load-generator process (one core at most: several run, so the hubs and not
    the generator are what saturates)."""
    results.put(asyncio.run(_generate(plan, barrier)))


async def _generate(plan: Plan, barrier: Any) -> dict:
    loop = asyncio.get_running_loop()

    async def step() -> None:
        await loop.run_in_executor(None, barrier.wait)

    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        people = [Participant(email, base, token) for email, base, token in plan.people]
        tally = Tally()
        feeds = [asyncio.create_task(follow(p, plan.head, http, tally)) for p in people]
        while any(p.socket is None for p in people):
            await asyncio.sleep(0.05)  # sockets still opening
        pairs = [(people[i], people[i ^ 1]) for i in range(len(people) - len(people) % 2)]
        await step()  # everyone connected: the closed loop starts
        me0, until = cpu_seconds(os.getpid()), time.monotonic() + plan.seconds
        await asyncio.gather(*(call_loop(a, b, http, tally, until) for a, b in pairs))
        report: dict = {"closed": asdict(tally), "cpu": cpu_seconds(os.getpid()) - me0}
        await step()
        if plan.rate:
            report["open"] = await open_loop(pairs, http, plan.rate, plan.seconds)
            await step()
        idle_requests = []
        for phase in range(2):
            before = tally.requests
            await step()  # the window starts
            await step()  # and ends
            idle_requests.append(tally.requests - before)
            if phase == 0:
                for p in people[len(people) // 4 :]:
                    await p.socket.close()  # type: ignore[attr-defined]
        report["idle_requests"] = idle_requests
        for task in feeds:
            task.cancel()
        return report


async def prepare(
    urls: list[str], args: argparse.Namespace
) -> tuple[list[Participant], float, int]:
    """Log everyone in and store ``--files``: the participants, files/s, the feed's head."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        people = [
            Participant(f"p{i}@bench.org", urls[i % len(urls)]) for i in range(args.participants)
        ]
        await log_in(http, people)
        seeded = await seed(http, people, args.files)
        head = int((await http.get(f"{urls[0]}/healthz")).json()["head"])
    return people, seeded, head


def measure(name: str, urls: list[str], pids: list[int], args: argparse.Namespace) -> dict:
    people, seeded, head = asyncio.run(prepare(urls, args))
    ctx = mp.get_context("spawn")
    count = max(1, min(args.generators, len(people) // 2))
    barrier, results = ctx.Barrier(count + 1), ctx.Queue()
    pairs = [people[i : i + 2] for i in range(0, len(people) - len(people) % 2, 2)]
    procs = []
    for k in range(count):
        share = [p for pair in pairs[k::count] for p in pair]  # whole pairs: i, i ^ 1
        plan = Plan(
            [(p.email, p.base, p.token) for p in share], head, args.seconds,
            args.rate / count, args.idle_seconds,
        )  # fmt: skip
        procs.append(ctx.Process(target=generate, args=(plan, barrier, results)))
        procs[-1].start()

    def window(until_next_step: Callable[[], None]) -> tuple[list[float], dict, float]:
        cpu0, backing0, t0 = _cpu(pids), _backing_cpu(), time.monotonic()
        until_next_step()
        wall = time.monotonic() - t0
        cpu = [(c1 - c0) / wall for c0, c1 in zip(cpu0, _cpu(pids), strict=True)]
        backing = {k: round((v - backing0[k]) / wall, 2) for k, v in _backing_cpu().items()}
        return cpu, backing, wall

    barrier.wait()  # all connected
    cpu, backing, wall = window(barrier.wait)
    if args.rate:
        barrier.wait()
    idle = []
    for connected in (len(people), len(people) // 4):
        time.sleep(2)  # the load's last requests settle
        barrier.wait()
        cpu_idle, _, idle_wall = window(lambda: (time.sleep(args.idle_seconds), barrier.wait()))
        idle.append((connected, sum(cpu_idle) * idle_wall, idle_wall))
    reports = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    rtts = sorted(t for r in reports for t in r["closed"]["rtts"])
    result = {
        "setup": name,
        "participants": len(people),
        "load_generators": count,
        "files": args.files,
        "seed_files_per_s": round(seeded, 1),
        "rpc_p50_ms": round(1000 * statistics.median(rtts), 1),
        "rpc_p99_ms": round(1000 * percentile(rtts, 0.99), 1),
        "rpcs_per_s": round(len(rtts) / wall, 1),
        "http_requests_per_s": round(sum(r["closed"]["requests"] for r in reports) / wall, 1),
        "hub_cpu_per_process": [round(c, 2) for c in cpu],
        "hub_cpu_ms_per_request": round(
            1000 * sum(cpu) * wall / max(1, sum(r["closed"]["requests"] for r in reports)), 2
        ),
        "load_generator_cpu": round(sum(r["cpu"] for r in reports) / wall, 2),
        "postgres_and_moto_cpu": backing,
    }
    print(json.dumps(result), flush=True)
    if args.rate:
        result["open_loop"] = _open_summary(args.rate, [r["open"] for r in reports])
        print(json.dumps({"setup": name, "open_loop": result["open_loop"]}), flush=True)
    result["idle"] = [
        {
            "connected": connected,
            "requests_per_min": round(
                sum(r["idle_requests"][k] for r in reports) * 60 / seconds, 1
            ),
            "hub_cpu_s_per_min": round(cpu_s * 60 / seconds, 3),
            "hub_cpu_ms_per_participant_min": round(1000 * cpu_s * 60 / seconds / connected, 2),
        }
        for k, (connected, cpu_s, seconds) in enumerate(idle)
    ]
    print(json.dumps({"setup": name, "idle": result["idle"]}), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--only", default="cluster,sqlite")
    parser.add_argument(
        "--generators",
        type=int,
        default=2,
        help="load-generator processes (one alone saturated its core before the hubs did)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=20,
        help="then also RPCs at this fixed rate (per second) for --seconds: latency under "
        "a stated load, beside the closed loop's saturation figures (0: skip)",
    )
    args = parser.parse_args()
    only = args.only.split(",")
    os.environ.setdefault("FEDBOX_HOME", tempfile.mkdtemp(prefix="fedbox-bench-"))
    results = []
    if "cluster" in only:
        with local_cluster(Path(tempfile.mkdtemp(prefix="hub-scale-"))) as cluster:
            pids = [p.proc.pid for p in cluster.procs if p.proc is not None]
            results.append(measure("2 x PostgreSQL+S3", cluster.urls, pids, args))
    if "sqlite" in only:
        hub = HubProcess(Path(tempfile.mkdtemp(prefix="hub-sqlite-")), *NO_LOGIN_LIMITS)
        try:
            assert hub.proc is not None
            results.append(measure("1 x SQLite", [hub.url], [hub.proc.pid], args))
        finally:
            hub.stop()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
