"""Reading runs back: what ``fedbox runs`` and the dashboard show.

Reads the aggregator's run records (:mod:`fedbox.fl.record`) in its state dir. Safe
while a run is in progress: the record is SQLite in WAL mode, so a reader in another
process sees every exchange the aggregator has committed, and never blocks it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from fedbox.fl.record import SUFFIX, RunNotFound, connect_reader, is_held, record_path, runs_dir

__all__ = ["RoundHistory", "RunHistory", "RunNotFound", "RunSummary", "list_runs", "read_run"]

WEIGHT_METRIC = "num-examples"
"""The metric that weights a reply's other metrics, as Flower's FedAvg weights them."""


@dataclass(frozen=True)
class RunSummary:
    """One run as a line of ``fedbox runs list``.

    ``status``: ``running`` (its aggregator is working on it now), ``finished`` (the
    ServerApp returned), ``failed`` (it raised, or diverged on replay), ``interrupted``
    (stopped or killed before the end: starting the same command again resumes it).
    ``rounds`` counts the distinct rounds its messages carried.
    """

    name: str
    app: str
    role: str
    started: float
    finished: float | None
    status: str
    rounds: int
    error: str | None = None
    restarts: int = 0
    """How many times the run was resumed after a stop or crash."""


@dataclass(frozen=True)
class RoundHistory:
    """One round, as the aggregator saw it: its messages and the replies to them.

    ``sent`` counts every message of the round (train and evaluate alike), ``replies``
    the non-error replies the ServerApp was given, ``errors`` the Error replies,
    ``timeouts`` the messages given up on. ``metrics`` holds, for each scalar metric in
    the replies, its mean over the replies weighted by their ``num-examples`` metric
    (an unweighted mean when a reply has none), keyed ``{message type}.{metric}``
    (``train.loss``, ``evaluate.accuracy``) so a train and an evaluate metric of the
    same name stay apart. ``answered`` lists who sent a non-error reply, in order.
    """

    round: str
    sent: int
    replies: int
    errors: int
    timeouts: int
    metrics: dict[str, float]
    answered: tuple[str, ...]
    pending: int = 0
    """Messages sent whose reply the ServerApp has not been given yet."""


@dataclass(frozen=True)
class RunHistory:
    """A run and its rounds, in the order the ServerApp started them."""

    summary: RunSummary
    rounds: tuple[RoundHistory, ...]
    run_config: dict[str, object] = field(default_factory=dict)
    datasites: tuple[str, ...] = ()


def list_runs(state_dir: Path) -> list[RunSummary]:
    """Every run recorded in ``state_dir``, newest first (unreadable records skipped)."""
    folder = runs_dir(state_dir)
    if not folder.is_dir():
        return []
    summaries = []
    for path in folder.glob(f"*{SUFFIX}"):
        if path.name.startswith("."):
            continue
        try:
            summaries.append(_read(state_dir, path)[0])
        except (sqlite3.Error, RunNotFound):
            continue
    return sorted(summaries, key=lambda s: s.started, reverse=True)


def read_run(state_dir: Path, name: str) -> RunHistory:
    """The run ``name`` recorded in ``state_dir``; RunNotFound (a FedboxError) if none."""
    path = record_path(state_dir, name)
    if not path.exists():
        raise RunNotFound(f"no run named {name} in {runs_dir(state_dir)}")
    try:
        summary, rounds, row = _read(state_dir, path)
    except sqlite3.Error as exc:
        raise RunNotFound(f"the record of run {name} is unreadable: {exc}") from exc
    return RunHistory(
        summary,
        rounds,
        run_config=json.loads(row["run_config"]),
        datasites=tuple(json.loads(row["datasites"])),
    )


def _read(state_dir: Path, path: Path) -> tuple[RunSummary, tuple[RoundHistory, ...], sqlite3.Row]:
    conn = connect_reader(path)
    try:
        with conn:  # one read transaction: the run row and its messages agree
            row = conn.execute("SELECT * FROM run").fetchone()
            if row is None:
                raise RunNotFound(f"{path} holds no run")
            messages = conn.execute(
                "SELECT email, message_type, round, outcome, metrics FROM messages"
                " ORDER BY pushed, rowid"
            ).fetchall()
    finally:
        conn.close()
    rounds = _rounds(messages)
    status = row["status"]
    if status == "running" and not is_held(state_dir, row["name"]):
        status = "interrupted"  # its process died without saying so
    summary = RunSummary(
        name=row["name"],
        app=row["app"],
        role=row["role"],
        started=row["started"],
        finished=row["finished"],
        status=status,
        rounds=sum(1 for r in rounds if r.round),
        error=row["error"],
        restarts=row["restarts"],
    )
    return summary, rounds, row


class _Round:
    def __init__(self) -> None:
        self.sent = self.replies = self.errors = self.timeouts = self.pending = 0
        self.answered: list[str] = []
        self.sums: dict[str, float] = defaultdict(float)
        self.weights: dict[str, float] = defaultdict(float)

    def add(self, message: sqlite3.Row) -> None:
        self.sent += 1
        outcome = message["outcome"]
        if outcome is None:
            self.pending += 1
        elif outcome == "timeout":
            self.timeouts += 1
        elif outcome == "error":
            self.errors += 1
        else:
            self.replies += 1
            if message["email"] not in self.answered:
                self.answered.append(message["email"])
            metrics = json.loads(message["metrics"] or "{}")
            weight = float(metrics.get(WEIGHT_METRIC, 1.0)) or 1.0
            for key, value in metrics.items():
                name = f"{message['message_type']}.{key}"
                self.sums[name] += weight * float(value)
                self.weights[name] += weight

    def history(self, label: str) -> RoundHistory:
        metrics = {k: self.sums[k] / self.weights[k] for k in sorted(self.sums) if self.weights[k]}
        return RoundHistory(
            round=label,
            sent=self.sent,
            replies=self.replies,
            errors=self.errors,
            timeouts=self.timeouts,
            metrics=metrics,
            answered=tuple(self.answered),
            pending=self.pending,
        )


def _rounds(messages: list[sqlite3.Row]) -> tuple[RoundHistory, ...]:
    rounds: dict[str, _Round] = {}
    for message in messages:
        rounds.setdefault(message["round"], _Round()).add(message)
    return tuple(r.history(label) for label, r in rounds.items())
