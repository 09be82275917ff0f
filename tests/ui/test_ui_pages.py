"""Every page over a real world (real calls, keys, dataset, jobs, a run record), and
every action through the owner's and the trust store's own APIs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ui_world import ME, PEER, RunWriter, World, change_peer_key

from fedbox.crypto import Identity, TrustStore
from fedbox.datasite.workspace import Workspace
from fedbox.rds.owner import Owner
from fedbox.rds.states import JobState
from fedbox.rpc.audit import AuditLog
from fedbox.ui import UiSettings
from fedbox.ui.security import CSRF_FIELD, csrf_value

HTML = {"accept": "text/html"}


def _csrf(settings: UiSettings) -> dict[str, str]:
    return {CSRF_FIELD: csrf_value(settings.token)}


def _state(world: World, job_id: str) -> JobState:
    with Owner(Workspace(ME, world.state)) as owner:
        return owner.jobs.get(job_id).status


def test_overview_shows_identity_traffic_and_waiting_jobs(client: TestClient, world: World) -> None:
    page = client.get("/").text
    fingerprint = Identity.load_or_create(world.state, ME).public_bundle().fingerprint
    assert ME in page and fingerprint in page and str(world.root) in page
    assert re.search(r'id="count-in">1<', page) and re.search(r'id="count-out">1<', page)
    assert page.count("/jobs/") >= 2  # both jobs wait for review
    assert "None running" in page


def test_overview_lists_a_running_server_from_its_lease(client: TestClient, world: World) -> None:
    from echo_app import serve_echo

    import fedbox

    with fedbox.connect(world.root, ME) as me:
        serve_echo(me)
        page = client.get("/").text
    assert "<strong>t</strong>" in page and "None running" not in page
    assert "None running" in client.get("/").text  # its lease went with it


def test_messages_lists_the_audit_trail_and_filters_it(client: TestClient) -> None:
    page = client.get("/messages").text
    assert page.count("/messages/in/") == 1 and page.count("/messages/out/") == 1
    assert "/messages/out/" in client.get("/messages?direction=out").text
    assert "/messages/in/" not in client.get("/messages?direction=out").text
    assert "No calls match" in client.get("/messages?peer=nobody@x.org").text
    assert "No calls match" in client.get("/messages?app=other").text
    assert "No calls match" in client.get("/messages?status=500").text
    assert client.get("/messages?status=200&period=hour&app=t").text.count("/messages/") == 2
    assert client.get("/messages?status=abc").status_code == 400
    assert client.get("/messages?direction=sideways").status_code == 400


def test_a_message_shows_its_row_and_files_as_inspect_reads_them(
    client: TestClient, world: World
) -> None:
    log = AuditLog(Workspace(ME, world.state).audit_db)
    try:
        (call,) = log.records(direction="out")
    finally:
        log.close()
    page = client.get(f"/messages/out/{PEER}/{call.id}").text
    assert call.id in page and call.sha256 in page
    # the request is encrypted for the peer; its response, for us, opens
    assert f"you sent it, encrypted for {PEER}: only they can open it" in page
    assert 'class="tone-green">ok</span>, 9 bytes of plaintext, authenticated' in page
    assert page.count("digest check") == 2


def test_a_message_whose_files_were_cleaned_up_says_so(client: TestClient, world: World) -> None:
    for f in world.root.rglob("*.re*"):
        f.unlink()
    log = AuditLog(Workspace(ME, world.state).audit_db)
    try:
        (call,) = log.records(direction="in")
    finally:
        log.close()
    page = client.get(f"/messages/in/{PEER}/{call.id}").text
    assert page.count("Not in the store any more") == 2


def test_an_unknown_message_is_not_found(client: TestClient) -> None:
    response = client.get(f"/messages/in/{PEER}/nope", headers=HTML)
    assert response.status_code == 404 and "no call nope" in response.text


def test_peers_shows_pins_and_trusts_a_changed_key_only_as_shown(
    client: TestClient, world: World, settings: UiSettings
) -> None:
    pins = TrustStore(world.state)
    old = pins.pinned(PEER)
    page = client.get("/peers").text
    assert PEER in page and old in page and ">trusted<" in page
    new = change_peer_key(world.root)
    page = client.get("/peers").text
    assert ">changed<" in page and new in page and old in page
    stale = client.post(f"/peers/{PEER}/trust", data={**_csrf(settings), "fingerprint": old})
    assert stale.status_code == 409 and pins.pinned(PEER) == old
    refused = client.post(f"/peers/{PEER}/trust", data={"fingerprint": new})
    assert refused.status_code == 403 and pins.pinned(PEER) == old
    done = client.post(f"/peers/{PEER}/trust", data={**_csrf(settings), "fingerprint": new})
    assert done.status_code == 303 and pins.pinned(PEER) == new
    assert ">trusted<" in client.get("/peers").text


def test_jobs_lists_received_jobs_and_the_dataset(client: TestClient, world: World) -> None:
    page = client.get("/jobs").text
    assert all(job_id[:8] in page for job_id in world.jobs)
    assert "census" in page and "toy" in page and PEER in page


def test_a_job_shows_its_code_highlighted(client: TestClient, world: World) -> None:
    page = client.get(f"/jobs/{world.jobs[0]}").text
    assert 'class="hl' in page and "main.py" in page
    assert re.search(r'<span class="kn">from</span>', page)  # Pygments' keyword class
    assert client.get(f"/jobs/{world.jobs[0]}?file=../../keys/identity.json").status_code == 404
    assert ".hl .kn" in client.get("/highlight.css").text


def test_approve_run_and_share_a_job_by_its_buttons(
    client: TestClient, world: World, settings: UiSettings
) -> None:
    job = world.jobs[0]
    assert client.post(f"/jobs/{job}/approve").status_code == 403
    assert _state(world, job) is JobState.SUBMITTED
    assert client.post(f"/jobs/{job}/approve", data=_csrf(settings)).status_code == 303
    assert _state(world, job) is JobState.APPROVED
    assert client.post(f"/jobs/{job}/run", data=_csrf(settings)).status_code == 303
    assert _state(world, job) is JobState.FINISHED
    page = client.get(f"/jobs/{job}").text
    assert "logs/stdout" in page or "logs/" in page
    log_path = re.search(rf'href="/jobs/{job}/outputs/(logs/[^"]+)"', page)
    assert log_path is not None
    assert "rows 3" in "".join(
        client.get(f"/jobs/{job}/outputs/{p}").text
        for p in re.findall(rf'href="/jobs/{job}/outputs/([^"]+)"', page)
    )
    assert client.get(f"/jobs/{job}/outputs/../package.tar").status_code == 404
    assert client.post(f"/jobs/{job}/share", data=_csrf(settings)).status_code == 303
    assert _state(world, job) is JobState.SHARED


def test_reject_needs_a_reason_and_a_refused_transition_changes_nothing(
    client: TestClient, world: World, settings: UiSettings
) -> None:
    job = world.jobs[1]
    no_reason = client.post(f"/jobs/{job}/reject", data={**_csrf(settings), "reason": " "})
    assert no_reason.status_code == 400 and _state(world, job) is JobState.SUBMITTED
    early = client.post(f"/jobs/{job}/share", data=_csrf(settings), headers=HTML)
    assert early.status_code == 409 and "cannot become shared" in early.text
    reason = "reads more than it needs"
    rejected = client.post(f"/jobs/{job}/reject", data={**_csrf(settings), "reason": reason})
    assert rejected.status_code == 303 and _state(world, job) is JobState.REJECTED
    page = client.get(f"/jobs/{job}").text
    assert reason in page and "/reject" not in page  # a final state offers no decision
    assert client.get("/jobs/no-such-job", headers=HTML).status_code == 404


@pytest.fixture
def run_writer(world: World):
    writer = RunWriter(world.state, rounds=2)
    yield writer
    writer.close()


def test_runs_lists_a_run_and_its_rounds_and_metrics(
    client: TestClient, run_writer: RunWriter
) -> None:
    run_writer.step("round 1")
    page = client.get("/runs").text
    assert "demo-run" in page and "digits" in page and ">running<" in page
    page = client.get("/runs/demo-run").text
    data = json.loads(re.search(r'id="run-data" type="application/json">(.*?)</script>', page)[1])
    assert data["metrics"] == ["train.loss", "train.num-examples"]
    assert [r["round"] for r in data["rounds"]] == ["1"]
    assert data["rounds"][0]["metrics"]["train.loss"] == pytest.approx(1.5)
    assert "/static/vendor/chart.umd.min.js" in page
    assert client.get("/runs/nope", headers=HTML).status_code == 404


def test_a_finished_run_streams_once_then_ends(client: TestClient, run_writer: RunWriter) -> None:
    run_writer.step("round 1")
    run_writer.step("round 2")
    run_writer.step("finished")
    body = client.get("/runs/demo-run/events").text
    events = [e for e in body.split("\n\n") if e]
    assert len(events) == 2 and events[1].startswith("event: end")
    data = json.loads(events[0].removeprefix("data: "))
    assert data["summary"]["status"] == "finished" and len(data["rounds"]) == 2


def test_no_store_pages_say_what_they_need(world: World) -> None:
    from fedbox.ui import create_app

    settings = UiSettings(email=ME, state_dir=world.state, port=8765)
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8765") as client:
        client.get(f"/?token={settings.token}")
        assert "none given (--root)" in client.get("/").text
        assert "no store given" in client.get("/peers").text
        assert "Needs the store" in client.get("/jobs").text


def test_an_identity_with_nothing_yet_gets_empty_pages(tmp_path: Path) -> None:
    from fedbox.ui import create_app

    settings = UiSettings(email="new@x.org", state_dir=tmp_path / "new", port=8765)
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8765") as client:
        client.get(f"/?token={settings.token}")
        assert "no keys yet" in client.get("/").text
        for path in ("/runs", "/messages", "/peers", "/jobs"):
            assert client.get(path).status_code == 200, path
    assert not (tmp_path / "new" / "keys").exists()  # looking creates no keys
