"""An FL run through a hub that restarts mid-run while a participant is offline: every
participant is its own ``fedbox run`` process, as in a real deployment."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_process import NO_LOGIN_LIMITS, HubProcess, client_for
from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fl"))
from fl_helpers import FBCOUNT, Proc

from fedbox.hub.credentials import login, request_code

AGG = "ds@uni.org"
SITES = ["do0@a.org", "do1@b.org", "do2@c.org"]
APP_NAME = f"{AGG}_fbcount_1700000002"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    server = HubProcess(tmp_path / "hub", *NO_LOGIN_LIMITS)
    yield server
    server.stop()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.kill()


def _run(procs: list[Proc], log: Path, url: str, email: str, *extra: str) -> Proc:
    sites = [arg for s in SITES for arg in ("--datasite", s)]
    proc = Proc(
        log, "run", str(FBCOUNT), "--email", email, "--root", url, "--aggregator", AGG,
        *sites, "--app-name", APP_NAME, *extra,
    )  # fmt: skip
    procs.append(proc)
    return proc


def test_a_run_survives_a_hub_restart_while_a_participant_is_offline(
    hub: HubProcess, procs: list[Proc], tmp_path: Path, fedbox_home: Path
) -> None:
    url = f"hub://127.0.0.1:{hub.port}"
    for email in (AGG, *SITES):
        login(url, email, request_code(url, email) or "")
    sites = {s: _run(procs, tmp_path / f"{s}.log", url, s) for s in SITES}
    agg = _run(
        procs, tmp_path / "agg.log", url, AGG, "--run-config", "num-server-rounds=3 round-pause=3"
    )
    agg.wait_for("fbcount round 1 replies 3", timeout=120)
    victim = SITES[1]
    sites[victim].kill()  # offline, without a goodbye
    hub.stop()  # and the hub goes down and comes back, on the same port and data
    hub.start()
    inbox = f"syft_outbox_inbox_{AGG}_to_{victim}/{APP_NAME}/rpc/messages"
    reader = client_for(hub.url, victim)

    def round_two_waits_for_the_victim() -> bool:
        listed = reader.get("/api/v1/list", params={"prefix": inbox}).json()["files"]
        return sum(f["path"].endswith(".request") for f in listed) >= 2

    wait_until(round_two_waits_for_the_victim, "round 2 to be sent to the offline site", 120)
    back = _run(procs, tmp_path / "back.log", url, victim)
    assert agg.wait(timeout=180) == 0, agg.output
    out = agg.output
    for pid in range(3):  # each site trained exactly once per round: nothing lost or doubled
        assert f"fbcount round 3 partition {pid} count 3" in out, out
    assert not re.search(r"fbcount round \d+ node \d+ error", out), out
    assert back.wait(timeout=60) == 0, back.output
    for site in SITES:
        if site != victim:
            assert sites[site].wait(timeout=60) == 0, sites[site].output
