"""`fedbox run`: every participant its own process, as in a real deployment."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fl_helpers import FBCOUNT, Proc, run_fedbox

from fedbox.crypto import Identity, TrustStore

AGG = "ds@uni.org"
SITES = ["do0@a.org", "do1@b.org", "do2@c.org"]


def _site_args(sites: list[str]) -> list[str]:
    return [arg for s in sites for arg in ("--datasite", s)]


def _aggregator(start: Callable[..., Proc], root: Path, run_config: str, *extra: str) -> Proc:
    return start(
        "aggregator",
        "run",
        str(FBCOUNT),
        "--email",
        AGG,
        "--root",
        str(root),
        "--aggregator",
        AGG,
        *_site_args(SITES),
        "--run-config",
        run_config,
        *extra,
    )


def _datasite(
    start: Callable[..., Proc], root: Path, email: str, name: str = "", *extra: str
) -> Proc:
    return start(
        name or email.split("@")[0],
        "run",
        str(FBCOUNT),
        "--email",
        email,
        "--root",
        str(root),
        "--aggregator",
        AGG,
        *_site_args(SITES),
        *extra,
    )


@pytest.mark.parametrize("encrypt", ["--no-encrypt", "--encrypt"])
def test_with_min_datasites_a_run_goes_on_without_one_that_never_joins(
    start_fedbox: Callable[..., Proc], root: Path, encrypt: str
) -> None:
    # Datasites find the run themselves (no --app-name): they wait for its first request.
    a = _datasite(start_fedbox, root, SITES[0], "", encrypt)
    b = _datasite(start_fedbox, root, SITES[1], "", encrypt)
    a.wait_for("waiting for a run"), b.wait_for("waiting for a run")
    agg = _aggregator(
        start_fedbox, root, "num-server-rounds=2", "--min-datasites", "2",
        "--timeout", "5", "--stop-wait", "1", encrypt,
    )  # fmt: skip
    assert agg.wait(timeout=60) == 0, agg.output
    out = agg.output
    assert "fbcount round 2 partition 1 count 2" in out and "ServerApp finished" in out
    assert "fbcount round 1 replies 2" in out and "fbcount round 2 replies 2" in out
    assert re.search(r"do2@c\.org\s+│ never\s+│ -\s+│ -", out), out
    assert "never joined: do2@c.org" in out
    assert "did not answer in time" not in out and "answered with errors" not in out
    if encrypt == "--encrypt":
        assert "no usable keys for do2@c.org: do2@c.org has no published keys" in out
    assert a.wait(timeout=30) == 0 and b.wait(timeout=30) == 0
    assert "stopped by the aggregator after 4 messages" in a.output  # join, 2 rounds, stop


def test_by_default_a_run_waits_for_every_datasite_then_fails_clearly(
    start_fedbox: Callable[..., Proc], root: Path
) -> None:
    a = _datasite(start_fedbox, root, SITES[0])
    b = _datasite(start_fedbox, root, SITES[1])
    agg = _aggregator(start_fedbox, root, "num-server-rounds=1", "--join-timeout", "8")
    agg.wait_for("waiting for 1 more datasite to join (2 joined, 3 needed): do2@c.org")
    assert agg.wait(timeout=60) == 1, agg.output
    out = " ".join(agg.output.split())
    assert (
        "run not started: 2 of the 3 datasites needed joined within 8 s; not joined: do2@c.org"
        in out
    )
    assert "fbcount round" not in out
    assert a.wait(timeout=30) == 0 and b.wait(timeout=30) == 0  # told to stop all the same


def test_a_killed_datasite_restarts_and_continues_with_its_state(
    start_fedbox: Callable[..., Proc], root: Path, tmp_path: Path
) -> None:
    app_name = f"{AGG}_fbcount_1700000001"
    common = ("--app-name", app_name)
    states = {s: tmp_path / "state" / s for s in SITES}
    sites = {
        s: _datasite(start_fedbox, root, s, "", "--state-dir", str(states[s]), *common)
        for s in SITES
    }
    agg = _aggregator(start_fedbox, root, "num-server-rounds=3 round-pause=3", *common)
    agg.wait_for("fbcount round 1 replies 3", timeout=60)
    victim = SITES[1]
    sites[victim].kill()  # SIGKILL during the pause after round 1: no goodbye
    restarted = _datasite(
        start_fedbox, root, victim, "restarted", "--state-dir", str(states[victim]), *common
    )
    assert agg.wait(timeout=90) == 0, agg.output
    out = agg.output
    for pid in range(3):
        assert f"fbcount round 3 partition {pid} count 3" in out, out
    assert restarted.wait(timeout=30) == 0, restarted.output
    assert "stopped by the aggregator after 3 messages" in restarted.output


def test_ctrl_c_of_the_aggregator_stops_every_datasite(
    start_fedbox: Callable[..., Proc], root: Path
) -> None:
    common = ("--app-name", f"{AGG}_fbcount_1700000002")
    sites = [_datasite(start_fedbox, root, s, "", *common) for s in SITES]
    agg = _aggregator(start_fedbox, root, "num-server-rounds=1000 round-pause=0.2", *common)
    agg.wait_for("fbcount round 2 replies 3", timeout=60)
    agg.interrupt()
    assert agg.wait(timeout=30) == 130, agg.output
    assert "interrupted" in agg.output
    for site in sites:
        assert site.wait(timeout=30) == 0, site.output
        assert re.search(r"stopped by the aggregator after \d+ messages", site.output)


def test_a_second_ctrl_c_of_the_aggregator_does_not_wait_for_confirmations(
    start_fedbox: Callable[..., Proc], root: Path
) -> None:
    common = ("--app-name", f"{AGG}_fbcount_1700000004")
    sites = [_datasite(start_fedbox, root, s, "", *common) for s in SITES]
    agg = _aggregator(
        start_fedbox, root, "num-server-rounds=1000 round-pause=0.2", *common, "--stop-wait", "600"
    )
    agg.wait_for("fbcount round 2 replies 3", timeout=60)
    for site in sites:
        site.kill()  # nobody left to confirm the stop
    agg.interrupt()
    agg.wait_for("Ctrl-C again not to wait", timeout=30)
    assert agg.proc.poll() is None  # waiting for the confirmations, as it said
    agg.interrupt()
    assert agg.wait(timeout=30) == 130, agg.output
    assert "not waiting for stop acknowledgements" in agg.output


def test_an_aggregator_that_requires_pins_addresses_only_pinned_datasites(
    start_fedbox: Callable[..., Proc], root: Path, tmp_path: Path
) -> None:
    app_name = f"{AGG}_fbcount_1700000003"
    states = {s: tmp_path / "state" / s for s in SITES}
    sites = [
        _datasite(start_fedbox, root, s, "", "--state-dir", str(states[s]), "--app-name", app_name)
        for s in SITES
    ]
    for site in sites:
        site.wait_for("serving")
    # The aggregator's operator checked two fingerprints with their owners and pinned them.
    agg_state = tmp_path / "agg-state"
    for s in SITES[:2]:
        fingerprint = Identity.load_or_create(states[s], s).public_bundle().fingerprint
        TrustStore(agg_state).trust(s, fingerprint)
    agg = _aggregator(
        start_fedbox,
        root,
        "num-server-rounds=1",
        *("--app-name", app_name, "--state-dir", str(agg_state), "--require-pinned"),
        *("--timeout", "5", "--stop-wait", "2", "--min-datasites", "2"),
    )
    assert agg.wait(timeout=60) == 0, agg.output
    out = " ".join(agg.output.split())
    assert "fbcount round 1 partition 0 count 1" in out and "partition 1 count 1" in out
    assert f"no usable keys for {SITES[2]}: {SITES[2]} is not pinned" in out
    assert f"fedbox keys trust {SITES[2]}" in out
    assert sites[0].wait(timeout=30) == 0 and sites[1].wait(timeout=30) == 0


def test_require_pinned_without_encryption_is_a_usage_error(root: Path) -> None:
    result = run_fedbox(
        "run", str(FBCOUNT), "--email", AGG, "--root", str(root), "--aggregator", AGG,
        *_site_args(SITES), "--require-pinned", "--no-encrypt",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--require-pinned needs encryption" in result.stdout + result.stderr
    assert not list(root.iterdir()), "nothing was written"
