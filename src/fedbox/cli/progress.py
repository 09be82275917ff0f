"""The live view and the closing report of a Flower run, for ``simulate`` and ``run``.

Both commands run a ServerApp the same way and must show it the same way: a table
that updates while messages flow on a terminal, one plain line per round phase
without one (nohup, systemd, CI), or one JSON object per line for tools
(``--json-progress``); then the full table, one row per datasite, each datasite's
error, and an exit code that says how the run ended (issue 12).

A run with more than :data:`MANY_DATASITES` datasites is summarised instead (issue 20):
one row for all of them, a row only for each datasite that needs a look (it never
joined, answered with errors, timed out or did not stop), a join line every tenth of
the way, and name lists cut short. JSON keeps one object per datasite: tools count.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fedbox.cli.fl_options import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, console
from fedbox.fl.events import EventCallback, FlEvent
from fedbox.fl.tally import NodeTally, PhaseTally, RunTally

if TYPE_CHECKING:
    from fedbox.fl.server import ServerOutcome

__all__ = ["Progress", "ProgressMode", "progress_mode", "report_outcome", "run_with_progress"]

MANY_DATASITES = 20
"""Above this many datasites, text progress summarises rather than listing each one."""
NAMES_SHOWN = 6
"""Names listed before "and N more"."""
WAITING_LINE_EVERY = 5.0
"""Seconds between "waiting for" lines when many datasites join (each join would make
one; the "joined" lines already count them in tenths)."""

ProgressMode = Literal["live", "lines", "json"]
"""``live``: a redrawn table (a terminal); ``lines``: a plain line per round phase;
``json``: one JSON object per line."""


def _human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


_TRAFFIC_COLUMNS = ("replies", "errors", "timeouts", "sent", "received")


def _traffic_cells(t: PhaseTally | NodeTally) -> list[str]:
    """The :data:`_TRAFFIC_COLUMNS` cells, alike for a phase and a datasite, so the two
    tables count messages and bytes the same way."""
    return [
        f"{t.replied}/{t.sent}",
        str(t.errors) if t.errors else "",
        str(t.timeouts) if t.timeouts else "",
        _human_size(t.bytes_out),
        _human_size(t.bytes_in),
    ]


_COUNTS = ("num-examples", "num_examples")
"""Example counts (Flower's and its legacy API's) weigh metrics; they are not one."""


def _shown_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in _COUNTS}


def _metrics_summary(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4g}" for k, v in _shown_metrics(metrics).items())


def progress_mode(json_progress: bool) -> ProgressMode:
    if json_progress:
        return "json"
    return "live" if console.is_terminal else "lines"


def _names(emails: list[str] | tuple[str, ...], limit: int = NAMES_SHOWN) -> str:
    """``a, b, c and 7 more``: a list of names a line can hold."""
    shown = ", ".join(emails[:limit])
    return shown if len(emails) <= limit else f"{shown} and {len(emails) - limit} more"


def _emit_line(text: str) -> None:
    """One line to stdout, never wrapped, flushed at once (a pipe would buffer it)."""
    print(text, flush=True)


def _emit_json(event: str, **fields: Any) -> None:
    _emit_line(json.dumps({"event": event, **fields}))


class Progress:
    """Live view of a run: one row per (round, message type), totals on top."""

    def __init__(self, tally: RunTally, title: str, n_nodes: int) -> None:
        self.tally = tally
        self.title = title
        self.n_nodes = n_nodes
        self.started = time.monotonic()

    def phase_table(self, last: int | None = 12) -> Table:
        table = Table(expand=False, title=None)
        for column in ("round", "type", *_TRAFFIC_COLUMNS, "seconds"):
            table.add_column(column, justify="right" if column != "type" else "left")
        table.add_column("metrics (mean over replies)")
        with self.tally.lock:
            phases = list(self.tally.phases.values())
        for p in phases[-last:] if last else phases:
            table.add_row(
                p.round or "-",
                p.message_type,
                *_traffic_cells(p),
                "" if p.seconds is None else f"{p.seconds:.3f}",
                _metrics_summary(p.metric_means()),
            )
        return table

    def __rich__(self) -> Group:
        out, inn = self.tally.totals()
        latest = self.tally.latest_phase()
        who = ""
        if latest is not None and latest.sent:
            names = ", ".join(e.split("@")[0] for e in latest.repliers[-6:])
            more = "..." if len(latest.repliers) > 6 else ""
            who = f"  last replies: {names}{more}"
        if latest is None and self.tally.waiting:
            who = f"  waiting for: {_names(self.tally.waiting)}"
        head = Text(
            f"{self.title}  {self.n_nodes} datasites  {time.monotonic() - self.started:.1f} s  "
            f"sent {_human_size(out)}  received {_human_size(inn)}{who}"
        )
        return Group(head, self.phase_table())


class _LineReporter:
    """The tally's callback plus a line (or JSON object) per round phase, and when the
    run waits for datasites or one joins.

    A phase's line comes when the next phase sends its first message (or the run ends,
    :meth:`flush`): a phase whose replies are all in may still grow, since Flower's
    legacy strategies send to each node from a thread of its own.
    """

    def __init__(self, tally: RunTally, mode: ProgressMode) -> None:
        self.tally = tally
        self.mode = mode
        self._current: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._joins = 0
        self._waiting_shown: float | None = None

    def __call__(self, event: FlEvent) -> None:
        self.tally(event)
        if self.mode == "live":
            return
        with self._lock:
            if event.kind == "waiting":
                self._waiting(event)
            elif event.kind == "joined":
                self._joined(event)
            elif event.kind == "sent" and (event.round, event.message_type) != self._current:
                self._phase_done()
                self._current = (event.round, event.message_type)

    def flush(self) -> None:
        """The last phase's line, once the run is over."""
        if self.mode == "live":
            return
        with self._lock:
            self._phase_done()
            self._current = None

    def _waiting(self, event: FlEvent) -> None:
        with self.tally.lock:
            joined = [n.email for n in self.tally.nodes.values() if n.joined]
        if self.mode == "json":
            _emit_json("waiting", waiting=list(event.waiting), needed=event.needed, joined=joined)
            return
        now = time.monotonic()
        shown = self._waiting_shown
        many = len(self.tally.nodes) > MANY_DATASITES
        if many and shown is not None and now < shown + WAITING_LINE_EVERY:
            return
        self._waiting_shown = now
        more = event.needed - len(joined)
        _emit_line(
            f"waiting for {more} more datasite{'s' if more != 1 else ''} to join "
            f"({len(joined)} joined, {event.needed} needed): {_names(event.waiting)}"
        )

    def _joined(self, event: FlEvent) -> None:
        self._joins += 1
        if self.mode == "json":
            _emit_json("joined", datasite=event.email)
            return
        total = len(self.tally.nodes)
        if total <= MANY_DATASITES:
            _emit_line(f"joined: {event.email}")
        elif self._joins == total or self._joins % -(-total // 10) == 0:
            _emit_line(f"joined: {self._joins} of {total} datasites (latest {event.email})")

    def _phase_done(self) -> None:
        with self.tally.lock:
            p = None if self._current is None else self.tally.phases.get(self._current)
            if p is None:
                return
            metrics = _shown_metrics(p.metric_means())
            seconds = p.seconds
            counts = (p.replied, p.sent, p.errors, p.timeouts, p.bytes_out, p.bytes_in)
        replied, sent, errors, timeouts, out, inn = counts
        if self.mode == "json":
            _emit_json(
                "phase",
                round=p.round,
                type=p.message_type,
                replies=replied,
                sent=sent,
                errors=errors,
                timeouts=timeouts,
                bytes_sent=out,
                bytes_received=inn,
                seconds=seconds,
                metrics=metrics,
            )
            return
        took = "" if seconds is None else f", {seconds:.3f} s"
        _emit_line(
            f"round {p.round or '-'} {p.message_type}: {replied}/{sent} replies, "
            f"{errors} errors, {timeouts} timeouts, sent {_human_size(out)}, "
            f"received {_human_size(inn)}{took}"
            + (f"  {_metrics_summary(metrics)}" if metrics else "")
        )


_NODE_COLUMNS = ("replies", "errors", "timeouts", "sent to it", "received from it")


def _needs_a_look(n: NodeTally, exit_codes: dict[str, int | None] | None) -> bool:
    """A datasite whose row a summary still shows."""
    exited = 0 if exit_codes is None else exit_codes.get(n.email, 0)
    return not n.joined or bool(n.errors or n.timeouts) or not n.stopped or exited != 0


def _node_table(tally: RunTally, exit_codes: dict[str, int | None] | None = None) -> Table:
    """One row per datasite; with more than :data:`MANY_DATASITES`, one row for all of
    them and rows for those that need a look only (at most :data:`MANY_DATASITES`)."""
    with tally.lock:
        nodes = list(tally.nodes.values())
    many = len(nodes) > MANY_DATASITES
    title = "datasites (as counted by the aggregator)"
    table = Table(title=f"{len(nodes)} {title}, summarised" if many else title)
    for column in ("datasite", "joined", *_NODE_COLUMNS, "stopped"):
        table.add_column(column)
    if exit_codes is not None:
        table.add_column("exit")
    if many:
        _add_total_row(table, nodes, exit_codes)
        notable = [n for n in nodes if _needs_a_look(n, exit_codes)]
        nodes = notable[:MANY_DATASITES]
        if len(notable) > len(nodes):
            table.caption = f"{len(notable) - len(nodes)} more datasites need a look"
    for n in nodes:
        traffic = _traffic_cells(n) if n.sent or n.joined else ["-"] * len(_NODE_COLUMNS)
        row = [
            n.email,
            "yes" if n.joined else "never",
            *traffic,
            "yes" if n.stopped else "no",
        ]
        if exit_codes is not None:
            code = exit_codes.get(n.email)
            row.append("running" if code is None else str(code))
        table.add_row(*row)
    return table


def _add_total_row(
    table: Table, nodes: list[NodeTally], exit_codes: dict[str, int | None] | None
) -> None:
    """``all N`` with the sums, and how many joined and stopped."""
    total = NodeTally(f"all {len(nodes)}")
    for n in nodes:
        for name in ("sent", "replied", "errors", "timeouts", "bytes_out", "bytes_in"):
            setattr(total, name, getattr(total, name) + getattr(n, name))
    row = [
        total.email,
        str(sum(n.joined for n in nodes)),
        *_traffic_cells(total),
        str(sum(n.stopped for n in nodes)),
    ]
    if exit_codes is not None:
        row.append(f"{sum(exit_codes.get(n.email) == 0 for n in nodes)} with 0")
    table.add_row(*row, end_section=True)


def run_with_progress(
    title: str,
    n_nodes: int,
    body: Callable[[EventCallback], ServerOutcome],
    tally: RunTally,
    mode: ProgressMode = "live",
) -> ServerOutcome:
    """Run ``body`` (the ServerApp, given the event callback to pass on) with progress
    in ``mode``; then, except for JSON, print every phase once."""
    progress = Progress(tally, title, n_nodes)
    reporter = _LineReporter(tally, mode)
    if mode == "live":
        with Live(progress, console=console, refresh_per_second=4, transient=True):
            outcome = body(reporter)
    else:
        outcome = body(reporter)
    reporter.flush()
    if mode != "json":
        console.print(progress.phase_table(last=None))
    return outcome


def _verdict(outcome: ServerOutcome, tally: RunTally) -> tuple[int, str, str]:
    """(exit code, status word, why) of a run."""
    from fedbox.fl.server import TooFewDatasites  # loaded by now: the run is over

    if outcome.interrupted:
        return (
            EXIT_INTERRUPTED,
            "interrupted",
            f"after {outcome.seconds:.1f} s; datasites told to stop",
        )
    if isinstance(outcome.error, TooFewDatasites):
        return EXIT_FAILED, "not started", str(outcome.error)
    if not outcome.finished:
        error = outcome.error
        return EXIT_FAILED, "ServerApp failed", f"{type(error).__name__}: {error}"
    failure = tally.failure()
    if failure is not None:
        return EXIT_FAILED, "failed", failure
    return EXIT_OK, "finished", f"in {outcome.seconds:.1f} s"


def report_outcome(
    outcome: ServerOutcome,
    tally: RunTally,
    exit_codes: dict[str, int | None] | None = None,
    mode: ProgressMode = "live",
) -> int:
    """Print the datasites and how the run ended; return the command's exit code.
    ``exit_codes`` are the client processes' (``simulate``), shown as a column."""
    code, status, why = _verdict(outcome, tally)
    if mode == "json":
        _report_json(outcome, tally, exit_codes, code, status, why)
        return code
    console.print(_node_table(tally, exit_codes))
    with tally.lock:
        nodes = list(tally.nodes.values())
    silent = sorted(n.email for n in nodes if n.timeouts)
    if silent:
        console.print(f"[yellow]did not answer in time:[/yellow] {_names(silent, 20)}")
    failing = [n for n in nodes if n.errors]
    if len(failing) > MANY_DATASITES:
        console.print(
            f"[yellow]{len(failing)} datasites answered with errors[/yellow] (tracebacks in "
            "their logs); the first ones:"
        )
        failing = failing[:MANY_DATASITES]
    elif failing:
        console.print("[yellow]answered with errors[/yellow] (full tracebacks in their logs):")
        for n in failing:
            console.print(
                f"  {n.email}: {n.errors} error{'s' if n.errors > 1 else ''}, last: "
                f"{escape(n.last_error or '')}",
                highlight=False,
            )
    never = [n.email for n in nodes if not n.joined]
    if never:
        console.print(f"[yellow]never joined:[/yellow] {_names(never, 20)}")
    for email, reason in sorted(outcome.keys_missing.items()):
        console.print(f"[yellow]no usable keys for {email}:[/yellow] {escape(reason)}")
    if status == "finished":
        console.print(f"[green]ServerApp finished[/green] {why}", highlight=False)
    else:
        word = status if status == "ServerApp failed" else f"run {status}"
        console.print(f"[red]{word}:[/red] {escape(why)}", highlight=False)
    return code


def _report_json(
    outcome: ServerOutcome,
    tally: RunTally,
    exit_codes: dict[str, int | None] | None,
    code: int,
    status: str,
    why: str,
) -> None:
    with tally.lock:
        nodes = list(tally.nodes.values())
    for n in nodes:
        _emit_json(
            "datasite",
            datasite=n.email,
            joined=n.joined,
            replies=n.replied,
            sent=n.sent,
            errors=n.errors,
            timeouts=n.timeouts,
            bytes_sent_to_it=n.bytes_out,
            bytes_received_from_it=n.bytes_in,
            last_error=n.last_error,
            stopped=n.stopped,
            exit=None if exit_codes is None else exit_codes.get(n.email),
            keys_missing=outcome.keys_missing.get(n.email),
        )
    _emit_json("end", status=status, reason=why, exit=code, seconds=outcome.seconds)
