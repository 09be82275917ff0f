"""The run history read API (``fedbox.fl.history``) over records a real aggregator-side
writer keeps, read from another process while the writer holds the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fedbox.errors import FedboxError
from fedbox.fl.history import RunNotFound, list_runs, read_run
from fedbox.fl.record import RunBusy, RunRecord

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fedbox.fl.record import RunRecord

    state = Path(sys.argv[1])
    rec = RunRecord.create(
        state, "agg@x.org_proj_1", key="k", app="proj", seed=1,
        run_config={"num-server-rounds": 2}, datasites=["a@x.org", "b@x.org"],
    )
    msgs = [("m1", 1, "a@x.org", "train", "1", "d1"), ("m2", 2, "b@x.org", "train", "1", "d1")]
    rec.add_push([["a"], ["b"]], ["m1", "m2"], msgs, {"d1": ([b"content"], 7)}, "1")
    print("pushed", flush=True)
    sys.stdin.readline()
    rec.keep_replies([("m1", b"r1"), ("m2", b"r2")])
    rec.add_replies(
        "receive", ["m1", "m2"], {},
        [
            ("m1", "reply", None, {"loss": 1.0, "num-examples": 30.0}),
            ("m2", "reply", None, {"loss": 4.0, "num-examples": 10.0}),
        ],
    )
    msgs = [("m3", 1, "a@x.org", "train", "2", "d2"), ("m4", 2, "b@x.org", "train", "2", "d2")]
    rec.add_push([["a"], ["b"]], ["m3", "m4"], msgs, {"d2": ([b"content2"], 8)}, "2")
    rec.keep_replies([("m3", b"e")])
    rec.add_replies("receive", ["m3", "m4"], {}, [("m3", "error", "boom", {})], ["m4"])
    print("replied", flush=True)
    sys.stdin.readline()
    if sys.argv[2] == "finish":
        rec.set_status("finished")
    rec.close()
    """
)


def _writer(state: Path, end: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(state), end],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _step(proc: subprocess.Popen[str], expect: str) -> None:
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == expect


def test_history_is_readable_while_the_run_is_written(tmp_path: Path) -> None:
    proc = _writer(tmp_path, "finish")
    try:
        _step(proc, "pushed")
        (summary,) = list_runs(tmp_path)
        assert (summary.name, summary.app, summary.role) == (
            "agg@x.org_proj_1",
            "proj",
            "aggregator",
        )
        assert summary.status == "running" and summary.finished is None
        history = read_run(tmp_path, summary.name)
        (first,) = history.rounds
        assert (first.round, first.sent, first.replies, first.pending) == ("1", 2, 0, 2)
        with pytest.raises(RunBusy):  # one aggregator per run
            RunRecord.reopen(tmp_path, summary.name)
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        _step(proc, "replied")
        history = read_run(tmp_path, summary.name)
        first, second = history.rounds
        assert (first.replies, first.errors, first.timeouts) == (2, 0, 0)
        assert first.answered == ("a@x.org", "b@x.org")
        assert first.metrics["train.loss"] == pytest.approx((30 * 1.0 + 10 * 4.0) / 40)
        assert first.metrics["train.num-examples"] == 40
        assert (second.sent, second.replies, second.errors, second.timeouts) == (2, 0, 1, 1)
        assert second.answered == ()
        assert history.summary.rounds == 2
        assert history.datasites == ("a@x.org", "b@x.org")
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert read_run(tmp_path, "agg@x.org_proj_1").summary.status == "finished"


def test_a_run_whose_process_died_reads_as_interrupted(tmp_path: Path) -> None:
    proc = _writer(tmp_path, "crash")
    try:
        _step(proc, "pushed")
        assert list_runs(tmp_path)[0].status == "running"
        proc.kill()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    (summary,) = list_runs(tmp_path)
    assert summary.status == "interrupted"


def test_unknown_runs_are_a_fedbox_error(tmp_path: Path) -> None:
    assert list_runs(tmp_path) == []
    with pytest.raises(RunNotFound) as caught:
        read_run(tmp_path, "nope")
    assert isinstance(caught.value, FedboxError)
    with pytest.raises(RunNotFound):
        read_run(tmp_path, "../etc")
