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
