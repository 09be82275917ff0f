"""Counting a run's events per round and per node, for live progress and summaries."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from fedbox.fl.events import FlEvent, error_summary

__all__ = ["NodeTally", "PhaseTally", "RunTally"]


@dataclass
class PhaseTally:
    """One ``(round, message_type)``: a round's train or evaluate phase, say."""

    round: str
    message_type: str
    sent: int = 0
    replied: int = 0
    errors: int = 0
    timeouts: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    repliers: list[str] = field(default_factory=list)
    first_sent: float | None = None
    last_reply: float | None = None
    metric_sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    metric_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def seconds(self) -> float | None:
        """From the first request written to the last reply read."""
        if self.first_sent is None or self.last_reply is None:
            return None
        return self.last_reply - self.first_sent

    def metric_means(self) -> dict[str, float]:
        """Unweighted mean over the nodes that reported each metric."""
        return {k: self.metric_sums[k] / self.metric_counts[k] for k in sorted(self.metric_sums)}


@dataclass
class NodeTally:
    """One datasite, counted on the aggregator's side: ``sent`` are messages to it,
    ``received`` its replies."""

    email: str
    joined: bool = False
    sent: int = 0
    replied: int = 0
    errors: int = 0
    timeouts: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    stopped: bool = False
    last_error: str | None = None
    """The last Error reply's reason in one line (``Type: first line``)."""


class RunTally:
    """A callback for FileGrid that keeps counts; safe to read from another thread."""

    def __init__(self, emails: list[str] | tuple[str, ...] = ()) -> None:
        self.lock = threading.Lock()
        self.phases: dict[tuple[str, str], PhaseTally] = {}
        self.nodes: dict[str, NodeTally] = {e: NodeTally(e) for e in emails}
        self.events = 0
        self.waiting: tuple[str, ...] = ()
        """Who the run waits for to join (empty once it no longer waits)."""

    def __call__(self, event: FlEvent) -> None:
        with self.lock:
            self.events += 1
            if event.kind == "waiting":
                self.waiting = event.waiting
                return
            node = self.nodes.setdefault(event.email, NodeTally(event.email))
            if event.kind == "joined":
                node.joined = True
                self.waiting = tuple(e for e in self.waiting if e != event.email)
                return
            if event.kind == "stopped":
                node.stopped = True
                return
            if event.kind == "stop":
                return
            key = (event.round, event.message_type)
            phase = self.phases.get(key)
            if phase is None:
                phase = self.phases[key] = PhaseTally(event.round, event.message_type)
            if event.kind == "sent":
                if phase.first_sent is None:
                    phase.first_sent = event.at
                phase.sent += 1
                phase.bytes_out += event.nbytes
                node.sent += 1
                node.bytes_out += event.nbytes
            elif event.kind == "reply":
                phase.last_reply = event.at
                phase.replied += 1
                phase.bytes_in += event.nbytes
                phase.repliers.append(event.email)
                node.replied += 1
                node.bytes_in += event.nbytes
                if event.error is not None:
                    phase.errors += 1
                    node.errors += 1
                    node.last_error = error_summary(event.error)
                for k, v in event.metrics.items():
                    phase.metric_sums[k] += v
                    phase.metric_counts[k] += 1
            elif event.kind == "timeout":
                phase.timeouts += 1
                node.timeouts += 1

    def latest_phase(self) -> PhaseTally | None:
        with self.lock:
            return list(self.phases.values())[-1] if self.phases else None

    def failure(self) -> str | None:
        """Why a run whose ServerApp finished still failed, or None (issue 12): no
        datasite ever answered, or no reply of the last round was a result."""
        with self.lock:
            phases = [p for p in self.phases.values() if p.sent]
        if not phases:
            return None  # the ServerApp sent nothing: nothing to judge
        if not any(p.replied for p in phases):
            return "no datasite ever answered"
        last = phases[-1]
        final = [p for p in phases if p.round == last.round] if last.round else [last]
        replied = sum(p.replied for p in final)
        if replied and sum(p.errors for p in final) < replied:
            return None
        where = f"round {last.round}" if last.round else f"the last {last.message_type} phase"
        return f"every reply of {where} was an error" if replied else f"no reply in {where}"

    def totals(self) -> tuple[int, int]:
        """(bytes sent, bytes received) so far."""
        with self.lock:
            return (
                sum(p.bytes_out for p in self.phases.values()),
                sum(p.bytes_in for p in self.phases.values()),
            )
