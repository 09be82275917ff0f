"""Progress of a run with many datasites: a summary, not a row or line per datasite
(issue 20), while a small run still lists every one."""

from __future__ import annotations

import pytest
from flwr.app import Context, RecordDict

from fedbox.cli.fl_options import console
from fedbox.cli.progress import MANY_DATASITES, _LineReporter, report_outcome
from fedbox.fl.events import FlEvent
from fedbox.fl.server import ServerOutcome
from fedbox.fl.tally import RunTally


def _run(emails: list[str], *, never: str = "", failing: str = "") -> RunTally:
    """A tally as a finished one-round run leaves it: every datasite joined, answered
    and stopped, except ``never`` (never joined) and ``failing`` (an error reply)."""
    tally = RunTally(emails)
    for i, email in enumerate(emails):
        if email == never:
            continue
        tally(FlEvent("joined", email, i))
        tally(FlEvent("sent", email, i, "train", "1", nbytes=100))
        error = "ValueError: bad data" if email == failing else None
        tally(FlEvent("reply", email, i, "train", "1", nbytes=50, error=error))
        tally(FlEvent("stopped", email, i))
    return tally


def _report(tally: RunTally) -> str:
    outcome = ServerOutcome(finished=True, context=Context(0, 0, {}, RecordDict(), {}), seconds=1)
    with console.capture() as captured:
        report_outcome(outcome, tally, mode="lines")
    return captured.get()


def test_a_thousand_datasites_are_summarised() -> None:
    emails = [f"client-{i}@sim.fedbox" for i in range(1000)]
    text = _report(_run(emails, never="client-7@sim.fedbox", failing="client-900@sim.fedbox"))
    assert "all 1000" in text
    assert "client-7@sim.fedbox" in text and "client-900@sim.fedbox" in text
    rows = [line for line in text.splitlines() if line.startswith("│ client-")]
    assert len(rows) == 2  # the two that need a look; the others are in "all 1000"
    assert len(text.splitlines()) < 40


def test_a_small_run_lists_every_datasite() -> None:
    emails = [f"client-{i}@sim.fedbox" for i in range(MANY_DATASITES)]
    text = _report(_run(emails))
    assert all(email in text for email in emails)
    assert "all " not in text


def test_joins_are_counted_in_tenths(capsys: pytest.CaptureFixture[str]) -> None:
    emails = [f"client-{i}@sim.fedbox" for i in range(1000)]
    reporter = _LineReporter(RunTally(emails), "lines")
    for i, email in enumerate(emails):
        reporter(FlEvent("joined", email, i))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    assert lines[-1].startswith("joined: 1000 of 1000 datasites")


def test_waiting_lines_come_at_most_every_few_seconds_when_many_join(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emails = [f"client-{i}@sim.fedbox" for i in range(1000)]
    tally = RunTally(emails)
    reporter = _LineReporter(tally, "lines")
    for i, email in enumerate(emails):  # each join changes who is awaited: an event each
        event = FlEvent("waiting", "", 0, waiting=tuple(emails[i:]), needed=len(emails))
        tally(event)
        reporter(event)
        tally(FlEvent("joined", email, i))
    waiting = [line for line in capsys.readouterr().out.splitlines() if "waiting for" in line]
    assert waiting == [
        "waiting for 1000 more datasites to join (0 joined, 1000 needed): client-0@sim.fedbox, "
        "client-1@sim.fedbox, client-2@sim.fedbox, client-3@sim.fedbox, client-4@sim.fedbox, "
        "client-5@sim.fedbox and 994 more"
    ]


def test_a_small_run_says_each_time_who_it_waits_for(capsys: pytest.CaptureFixture[str]) -> None:
    emails = [f"client-{i}@sim.fedbox" for i in range(3)]
    tally = RunTally(emails)
    reporter = _LineReporter(tally, "lines")
    for i in range(3):
        event = FlEvent("waiting", "", 0, waiting=tuple(emails[i:]), needed=3)
        tally(event)
        reporter(event)
        tally(FlEvent("joined", emails[i], i))
    waiting = [line for line in capsys.readouterr().out.splitlines() if "waiting for" in line]
    assert len(waiting) == 3 and waiting[-1].startswith("waiting for 1 more datasite to join")
