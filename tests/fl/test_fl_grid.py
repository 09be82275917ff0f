"""FileGrid against real files, with ClientNodes in this process (threads)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from waiting import wait_until

import fedbox
from fedbox.datasite.paths import Kind, response_path
from fedbox.fl.client import ClientNode, node_config_for
from fedbox.fl.codec import RUN_CONFIG_RECORD
from fedbox.fl.config import node_id_for
from fedbox.fl.events import FlEvent
from fedbox.fl.grid import ENDPOINT, FileGrid
from fedbox.rpc import Response, read_header
from fedbox.testing import envelope_bytes, message_header

AGG, A, B, C = "agg@x.org", "a@x.org", "b@x.org", "c@x.org"
APP = "agg@x.org_gridtest_1700000000"


def _client_app() -> ClientApp:
    app = ClientApp()

    @app.query()
    def echo(msg: Message, context: Context) -> Message:
        value = int(msg.content["config"]["value"])
        metrics = MetricRecord({"value": value, "pid": context.node_config["partition-id"]})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app


class Federation:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.boxes: list[fedbox.Box] = []
        self.events: list[FlEvent] = []
        self.agg = self.connect(AGG)
        self.grid = FileGrid(self.agg.app(APP), [A, B, C], timeout=2.0, callback=self.events.append)

    def connect(self, email: str) -> fedbox.Box:
        box = fedbox.connect(self.root, email, encrypt=False)  # asserts on plaintext bodies
        self.boxes.append(box)
        return box

    def start_node(self, email: str, index: int) -> ClientNode:
        app = _client_app()
        node = ClientNode(self.connect(email), APP, lambda: app, node_config_for(index, 3, None))
        return node.start()

    def query(self, value: int, nodes: list[int] | None = None, ttl: float | None = None):
        content = RecordDict({"config": ConfigRecord({"value": value})})
        return [
            Message(content, node_id, "query", ttl=ttl, group_id=str(value))
            for node_id in (nodes or list(self.grid.nodes))
        ]

    def close(self) -> None:
        for box in self.boxes:
            box.close()


@pytest.fixture
def fed(root: Path) -> Iterator[Federation]:
    federation = Federation(root)
    yield federation
    federation.close()


def test_replies_are_matched_to_the_messages_sent(fed: Federation) -> None:
    fed.start_node(A, 0), fed.start_node(B, 1), fed.start_node(C, 2)
    assert fed.grid.wait_for_datasites(3, timeout=30) == [A, B, C]
    messages = fed.query(7)
    replies = fed.grid.send_and_receive(messages, timeout=30)
    assert {m.metadata.message_id for m in messages} == {
        r.metadata.reply_to_message_id for r in replies
    }
    by_node = {r.metadata.src_node_id: r.content["metrics"] for r in replies}
    assert by_node[node_id_for(B)]["pid"] == 1 and {m["value"] for m in by_node.values()} == {7}
    kinds = [e.kind for e in fed.events]
    assert kinds.count("sent") == 3 and kinds.count("reply") == 3


def test_get_node_ids_lists_the_datasites_that_joined(fed: Federation) -> None:
    assert fed.grid.get_node_ids() == []  # invited, but nobody serves the run yet
    fed.start_node(A, 0), fed.start_node(B, 1)
    assert fed.grid.wait_for_datasites(2, timeout=30) == [A, B]
    assert fed.grid.get_node_ids() == [node_id_for(A), node_id_for(B)]
    assert {e.email for e in fed.events if e.kind == "joined"} == {A, B}
    fed.start_node(C, 2)  # a late datasite joins: its answer to the invitation is waiting
    assert fed.grid.wait_for_datasites(3, timeout=30) == [A, B, C]
    assert fed.grid.get_node_ids() == [node_id_for(e) for e in (A, B, C)]


def test_the_join_wait_ends_at_its_timeout_with_who_joined(fed: Federation) -> None:
    fed.start_node(B, 1)
    assert fed.grid.wait_for_datasites(3, timeout=5.0) == [B]
    waiting = [e for e in fed.events if e.kind == "waiting"]
    assert waiting[-1].waiting == (A, C) and waiting[-1].needed == 3


def test_published_keys_alone_are_not_a_join(root: Path) -> None:
    with fedbox.connect(root, A, encrypt=True), fedbox.connect(root, AGG, encrypt=True) as agg:
        grid = FileGrid(agg.app(APP), [A], timeout=2.0)
        assert grid.wait_for_datasites(1, timeout=0.5) == []
        assert grid.get_node_ids() == [] and grid.keys_missing == {}


def test_a_datasite_without_keys_is_one_warning_line_not_one_per_message(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with fedbox.connect(root, AGG, encrypt=True) as agg:
        grid = FileGrid(agg.app(APP), [A, B], timeout=2.0)
        content = RecordDict({"config": ConfigRecord({"value": 1})})
        for _ in range(5):
            replies = grid.send_and_receive(
                [Message(content, node_id_for(A), "query", group_id="1")]
            )
            assert replies[0].error.code == ErrorCode.NODE_UNAVAILABLE
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("fedbox.fl") and r.levelno >= logging.WARNING
    ]
    assert len(lines) == 1 and A in lines[0] and "\n" not in lines[0], lines


def test_missing_node_times_out_and_its_late_reply_never_leaks(fed: Federation) -> None:
    fed.start_node(A, 0), fed.start_node(B, 1)
    first = fed.grid.send_and_receive(fed.query(1), timeout=3600)  # grid's 2 s is the ceiling
    assert sorted(r.metadata.src_node_id for r in first) == sorted([node_id_for(A), node_id_for(B)])
    assert [e.email for e in fed.events if e.kind == "timeout"] == [C]
    node_c = fed.start_node(C, 2)  # answers round 1 from its backlog: a late reply
    second_msgs = fed.query(2)
    second = fed.grid.send_and_receive(second_msgs)
    assert len(second) == 3
    assert {r.metadata.reply_to_message_id for r in second} == {
        m.metadata.message_id for m in second_msgs
    }
    assert all(r.content["metrics"]["value"] == 2 for r in second)
    assert node_c.runner.handled == 2


def test_push_and_pull_return_each_reply_once(fed: Federation) -> None:
    fed.start_node(A, 0)
    ids = fed.grid.push_messages(fed.query(3, [node_id_for(A)]))
    fed.agg.wait([fed.grid._pending[ids[0]].future], timeout=30)
    assert len(fed.grid.pull_messages(ids)) == 1
    assert fed.grid.pull_messages(ids) == []


def test_rpc_failures_become_flower_error_replies(fed: Federation) -> None:
    crashing = fed.connect(A).app(APP)
    crashing.on_request("messages")(lambda req: Response(b"disk on fire", status=500))
    crashing.start()
    wrong_endpoint = fed.connect(B).app(APP)
    wrong_endpoint.on_request("other")(lambda req: b"")
    wrong_endpoint.start()
    replies = fed.grid.send_and_receive(fed.query(4, [node_id_for(A), node_id_for(B)]))
    errors = {r.metadata.src_node_id: r.error for r in replies}
    assert errors[node_id_for(A)].code == ErrorCode.CLIENT_APP_CRASHED
    assert "disk on fire" in errors[node_id_for(A)].reason
    assert errors[node_id_for(B)].code == ErrorCode.NODE_UNAVAILABLE


def test_ttl_becomes_the_request_expiry_and_bodies_are_flower_protobuf(fed: Federation) -> None:
    fed.grid.push_messages(fed.query(5, [node_id_for(A)], ttl=30))
    (path,) = fed.root.rglob("*.request")
    with open(path, "rb") as f:
        header = read_header(f)
    assert header.endpoint == "messages" and header.app == APP
    assert 29 <= header.expires - header.created <= 30.5


def test_stop_reaches_running_nodes(fed: Federation) -> None:
    nodes = [fed.start_node(A, 0), fed.start_node(B, 1)]
    acked = fed.grid.stop_nodes(wait=1.0)
    assert acked == {A, B}
    assert all(n.stopped.is_set() for n in nodes)
    stops = [r for r in fed.agg.audit.records(direction="out") if r.peer in acked]
    assert len(stops) == 2 and all(r.status == 200 for r in stops), stops


def test_unknown_destinations_are_dropped_not_sent(fed: Federation) -> None:
    assert fed.grid.push_messages(fed.query(6, [12345])) == []


@pytest.mark.parametrize("size", [10, 1_000_000])
def test_arrays_arrive_intact(fed: Federation, size: int) -> None:
    app = ClientApp()

    @app.train()
    def double(msg: Message, context: Context) -> Message:
        arrays = [a * 2 for a in msg.content["arrays"].to_numpy_ndarrays()]
        return Message(RecordDict({"arrays": ArrayRecord(arrays)}), reply_to=msg)

    ClientNode(fed.connect(A), APP, lambda: app, node_config_for(0, 1, None)).start()
    data = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    msg = Message(RecordDict({"arrays": ArrayRecord([data])}), node_id_for(A), "train")
    (reply,) = fed.grid.send_and_receive([msg])
    np.testing.assert_array_equal(reply.content["arrays"].to_numpy_ndarrays()[0], data * 2)


def test_the_run_config_reaches_the_client_app_encrypted_never_in_a_header(root: Path) -> None:
    run_config = {"secret-lr": 0.125, "tag": "zebra-42"}
    app = ClientApp()

    @app.query()
    def config(msg: Message, context: Context) -> Message:
        assert RUN_CONFIG_RECORD not in msg.content  # the runner took it out
        return Message(RecordDict({"seen": ConfigRecord(dict(context.run_config))}), reply_to=msg)

    with (
        fedbox.connect(root, A, encrypt=True) as site,
        fedbox.connect(root, AGG, encrypt=True) as agg,
    ):
        grid = FileGrid(agg.app(APP), [A], timeout=30.0, run_config=run_config)
        content = RecordDict({"config": ConfigRecord({"value": 1})})
        ids = grid.push_messages([Message(content, node_id_for(A), "query", group_id="1")])
        (path,) = root.rglob("*.request")
        raw = path.read_bytes()
        with open(path, "rb") as f:
            header = read_header(f)
        assert not header.headers
        assert b"zebra-42" not in raw and b"secret-lr" not in raw and b"run-config" not in raw
        ClientNode(site, APP, lambda: app, node_config_for(0, 1, None)).start()
        agg.wait([grid._pending[ids[0]].future], timeout=30)
        (reply,) = grid.pull_messages(ids)
    assert dict(reply.content["seen"]) == run_config


def test_a_planted_reply_is_set_aside_and_the_nodes_own_reply_still_counts(root: Path) -> None:
    """Threat: a writer of the folder plants an error reply to an encrypted run's
    message; it must not cost the node its answer in that round."""
    with (
        fedbox.connect(root, A, encrypt=True) as node_box,
        fedbox.connect(root, AGG, encrypt=True) as agg,
    ):
        grid = FileGrid(agg.app(APP), [A], timeout=60)
        content = RecordDict({"config": ConfigRecord({"value": 5})})
        (msg_id,) = grid.push_messages([Message(content, node_id_for(A), "query")])
        planted = root / response_path(AGG, A, APP, ENDPOINT, msg_id)
        header = message_header(
            A, AGG, APP, ENDPOINT, msg_id=msg_id, kind=Kind.RESPONSE, status=500
        )
        planted.parent.mkdir(parents=True, exist_ok=True)
        planted.write_bytes(envelope_bytes(header, b"forged failure"))
        assert grid.pull_messages([msg_id]) == []
        assert (planted.parent / ".quarantine" / planted.name).exists()
        app = _client_app()
        ClientNode(node_box, APP, lambda: app, node_config_for(0, 1, None)).start()
        replies: list[Message] = []
        wait_until(lambda: replies.extend(grid.pull_messages([msg_id])) or replies, "the reply")
        (reply,) = replies
        assert not reply.has_error() and reply.content["metrics"]["value"] == 5
