"""The daemon's side of an FL job, with real boxes on a folder and the real sandboxed
client process: only the submitter's messages reach the client, a body that is no Flower
message is refused without ending the run, and the aggregator's stop ends the job."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.supercore.task_identity import TaskIdentity

import fedbox.rds
from fedbox.fl.codec import decode_message, encode_message
from fedbox.fl.config import node_id_for
from fedbox.fl.grid import ENDPOINT, run_id_for
from fedbox.fl.piped_client import ENTRY, RUN_FILE
from fedbox.fl.runner import CONTROL_RECORD, make_stop_message
from fedbox.rds import Rds
from fedbox.rds.fl_jobs import FlJobs, fl_app_name
from fedbox.rds.owner import RunRefused
from fedbox.rds.states import JobState

APP = Path(__file__).parent / "fl_probe"
OWNER, SCI, EVE = "a@one.org", "sci@lab.org", "eve@else.org"


@pytest.fixture
def people(root: Path, fedbox_home: Path) -> Iterator[dict[str, Rds]]:
    opened = {email: fedbox.rds.connect(root, email) for email in (OWNER, SCI, EVE)}
    try:
        yield opened
    finally:
        for rds in opened.values():
            rds.close()


def _until(check, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_daemon_relays_the_submitters_messages_only_and_ends_on_stop(
    people: dict[str, Rds], tmp_path: Path
) -> None:
    owner, sci, eve = people[OWNER], people[SCI], people[EVE]
    private, mock = tmp_path / "private", tmp_path / "mock"
    for folder, value in ((private, "3"), (mock, "0")):
        folder.mkdir()
        (folder / "value.txt").write_text(value)
    owner.create_dataset("numbers", private=private, mock=mock)
    owner.serve()
    fl_jobs = FlJobs(owner.box, owner.owner, endpoint=ENDPOINT, poll=0.2).start()
    try:
        package = tmp_path / "package"
        shutil.copytree(APP, package)
        (package / RUN_FILE).write_text(json.dumps({"datasites": [OWNER]}))
        [job] = sci.submit_to_each(
            package, [OWNER], dataset="numbers", entry=ENTRY, name="probe", kind="fl"
        )
        sci.submission_answer(job, 60)
        owned = owner.owned(job.id).approve()
        with pytest.raises(RunRefused, match="FL job"):
            owned.run()
        _until(lambda: owner.owner.jobs.get(job.id).status is JobState.RUNNING)
        app_name = fl_app_name(job.package_sha256)
        # as the aggregator's grid does: Flower reads these when a Message is built
        TaskIdentity.run_id, TaskIdentity.node_id = run_id_for(app_name), SUPERLINK_NODE_ID
        TaskIdentity.task_id = 1
        stop = make_stop_message(node_id_for(OWNER), run_id_for(app_name))
        stop.metadata.__dict__["_message_id"] = str(uuid.uuid4())
        body = encode_message(stop)

        forged = eve.box.app(app_name).send(OWNER, ENDPOINT, body).wait(60)
        assert forged.status == 403
        assert owner.owner.jobs.get(job.id).status is JobState.RUNNING

        garbage = sci.box.app(app_name).send(OWNER, ENDPOINT, b"\xff\xff not flower").wait(60)
        assert garbage.status == 400 and b"not a Flower message" in garbage.body
        assert owner.owner.jobs.get(job.id).status is JobState.RUNNING

        reply = sci.box.app(app_name).send(OWNER, ENDPOINT, body).wait(60)
        assert reply.ok, reply.body
        ack = decode_message(reply.body).content.config_records[CONTROL_RECORD]
        assert ack["action"] == "stopped"
        done = _until(
            lambda: (j := owner.owner.jobs.get(job.id)).status is not JobState.RUNNING and j
        )
        assert done.status is JobState.FINISHED, done.reason
        logs = owner.owner.job_folder(job.id) / "logs" / "stderr.txt"
        assert "FL client of fedbox-tests/fl-probe" in logs.read_text()
    finally:
        fl_jobs.stop()
