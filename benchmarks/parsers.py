"""Every parser of what others write, over many generated inputs (issue 18, point 4).

Each parser gets ``--cases`` inputs: a third arbitrary bytes, the rest valid inputs
damaged by ``fedbox.testing.parsers.mutate`` (bytes flipped, cut, spliced, lengths
lied about). Every input must be accepted or refused with a FedboxError; anything
else is a failure, counted, and its input saved for ``tests/properties`` to replay.
Reported per parser: cases/s, how many were accepted, the slowest case, and, among the
cases sampled with tracemalloc, the largest peak of memory allocated beyond 4x the input
(with that input's size).

    .venv/bin/python benchmarks/parsers.py                     # 20,000 cases per parser
    .venv/bin/python benchmarks/parsers.py --cases 1000000 --only envelope,flower
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fedbox.errors import FedboxError
from fedbox.testing.parsers import (
    MessageFolder,
    decode_flower,
    decode_flower_payload,
    mutate,
    parse_envelope,
    parse_permissions,
    parse_table,
    seeds,
)

FAILURES = Path(tempfile.gettempdir()) / "fedbox-parser-failures"


@dataclass
class Tally:
    cases: int = 0
    accepted: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    slowest: float = 0.0
    worst_peak: tuple[int, int] = (0, 0)
    """(bytes allocated at the peak, input bytes) of the sampled case that allocated most
    beyond 4x its input."""
    seconds: float = 0.0


def run(
    name: str,
    parse: Callable[[bytes], object],
    inputs: list[bytes],
    cases: int,
    rng: random.Random,
    memory_every: int,
) -> Tally:
    tally = Tally()
    started = time.perf_counter()
    for i in range(cases):
        if rng.random() < 1 / 3:
            data = rng.randbytes(rng.randrange(512))
        else:
            data = mutate(rng, rng.choice(inputs))
        sampled = memory_every and i % memory_every == 0
        if sampled:
            tracemalloc.start()
        t0 = time.perf_counter()
        try:
            parse(data)
            tally.accepted += 1
        except FedboxError:
            pass
        except Exception as exc:  # the failure this benchmark looks for
            kind = f"{type(exc).__name__}: {str(exc)[:80]}"
            if kind not in tally.failures:
                FAILURES.mkdir(exist_ok=True)
                (FAILURES / f"{name}-{len(tally.failures)}.bin").write_bytes(data)
            tally.failures[kind] = tally.failures.get(kind, 0) + 1
        tally.slowest = max(tally.slowest, time.perf_counter() - t0)
        if sampled:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            if peak - 4 * len(data) > tally.worst_peak[0] - 4 * tally.worst_peak[1]:
                tally.worst_peak = (peak, len(data))
        tally.cases += 1
    tally.seconds = time.perf_counter() - started
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=20_000, help="inputs per parser")
    parser.add_argument("--only", default="", help="comma-separated parser names")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument(
        "--memory-every", type=int, default=100, help="trace memory of every Nth case (0: none)"
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # a refused permission file is logged: millions here
    valid = seeds()
    with tempfile.TemporaryDirectory() as tmp:
        folder = MessageFolder(tmp)
        parsers: dict[str, tuple[Callable[[bytes], object], list[bytes]]] = {
            "envelope": (parse_envelope, valid["envelope"]),
            "message-file": (folder.read, valid["envelope"]),
            "parts-table": (parse_table, valid["table"]),
            "permissions": (parse_permissions, valid["permissions"]),
            "flower-bytes": (decode_flower, valid["flower"]),
            "flower-payload": (decode_flower_payload, valid["flower"]),
        }
        chosen = [n for n in args.only.split(",") if n] or list(parsers)
        print(f"{args.cases:,} cases per parser, seed {args.seed}")
        print(
            f"{'parser':<16}{'cases/s':>10}{'accepted':>10}{'slowest':>10}"
            f"{'peak for input':>18}  failures"
        )
        failed = 0
        for name in chosen:
            parse, inputs = parsers[name]
            tally = run(
                name, parse, inputs, args.cases, random.Random(args.seed), args.memory_every
            )
            rate = tally.cases / tally.seconds if tally.seconds else 0.0
            print(
                f"{name:<16}{rate:>10,.0f}{tally.accepted:>10,}{tally.slowest * 1000:>8.1f}ms"
                f"{tally.worst_peak[0] / 1024:>9.1f} KiB/{tally.worst_peak[1]:>4} B"
                f"  {sum(tally.failures.values()) or 'none'}",
                flush=True,
            )
            for kind, count in tally.failures.items():
                print(f"    {count} x {kind}")
            failed += sum(tally.failures.values())
        folder.close()
    if failed:
        print(f"inputs that failed are in {FAILURES}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
