"""The ClientApp side without files: encoding, saved contexts, errors, stop."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage
from flwr.supercore.task_identity import TaskIdentity

from fedbox.fl.codec import (
    BatchEncoder,
    decode_message,
    encode_message,
    run_config_trailer,
    summarize,
)
from fedbox.fl.contexts import ContextStore
from fedbox.fl.runner import NodeRunner, make_join_message, make_stop_message

NODE = 1234


@pytest.fixture(autouse=True)
def task_identity() -> None:
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 77, 1, 1


def _train_message(
    dst: int = NODE, msg_id: str = "m-1", explode: bool = False, read_only: bool = False
) -> Message:
    config = ConfigRecord({"explode": explode, "read-only": read_only})
    content = RecordDict(
        {"arrays": ArrayRecord([np.arange(6, dtype=np.float32)]), "config": config}
    )
    msg = Message(content, dst, "train", group_id="1")
    msg.metadata.__dict__["_message_id"] = msg_id
    return msg


def _counting_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        if msg.content["config"]["explode"]:
            context.state["dirty"] = MetricRecord({"x": 1})
            raise RuntimeError("boom")
        counter = context.state.get("c", MetricRecord({"n": 0}))
        if not msg.content["config"]["read-only"]:
            counter["n"] = int(counter["n"]) + 1
        context.state["c"] = counter
        metrics = MetricRecord({"n": int(counter["n"]), "pid": context.node_config["partition-id"]})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def bad_reply(msg: Message, context: Context) -> Message:
        return _train_message(msg_id="other")  # not a reply to msg

    return app


def _runner(tmp_path: Path) -> NodeRunner:
    app = _counting_app()
    return NodeRunner(
        lambda: app, NODE, {"partition-id": 3, "num-partitions": 5}, ContextStore(tmp_path)
    )


def test_batch_encoder_bytes_are_flowers_own_serialisation() -> None:
    encoder = BatchEncoder()
    shared = _train_message().content
    for i, dst in enumerate((5, 6, 7)):
        msg = Message(shared, dst, "train")
        msg.metadata.__dict__["_message_id"] = f"id-{i}"
        assert encoder.encode(msg) == message_to_proto(msg).SerializeToString()
    error = Message(Error(ErrorCode.UNKNOWN, "x"), reply_to=_train_message())
    assert encoder.encode(error) == encode_message(error)
    back = decode_message(encode_message(_train_message()))
    assert back.metadata.message_id == "m-1"
    assert summarize(back).records["arrays"].startswith("ArrayRecord 1 arrays [(6,)]")


def _odd_records() -> list[RecordDict]:
    return [
        RecordDict(
            {
                "arrays": ArrayRecord(
                    [np.arange(6, dtype=np.float32), np.zeros(0, dtype=np.int64), np.ones((3, 4))]
                ),
                "config": ConfigRecord({"lr": 0.1, "s": "x", "l": [1, 2], "b": b"xx"}),
                "m": MetricRecord({"a": 1.0, "l": [1, 2]}),
            }
        ),
        RecordDict({"": ArrayRecord({"": Array(np.zeros(0, dtype=np.float32))})}),
        RecordDict(),
        RecordDict({"a": ArrayRecord(), "c": ConfigRecord()}),
    ]


@pytest.mark.parametrize("content", _odd_records(), ids=["mixed", "empty-keys", "empty", "empties"])
def test_hand_written_wire_format_is_byte_identical_to_flowers(content: RecordDict) -> None:
    msg = Message(content, 5, "train", group_id="g")
    msg.metadata.__dict__["_message_id"] = "id"
    reference = message_to_proto(msg).SerializeToString()
    assert encode_message(msg) == reference
    assert BatchEncoder().reader(msg).read() == reference
    back = decode_message(reference)
    assert encode_message(back) == reference
    assert back.metadata == message_from_proto(ProtoMessage.FromString(reference)).metadata


def test_damaged_bodies_get_the_same_verdict_as_protobuf() -> None:
    msg = Message(_odd_records()[0], 5, "train")
    msg.metadata.__dict__["_message_id"] = "id"
    body = encode_message(msg)
    rng = random.Random(7)
    for _ in range(500):
        damaged = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(len(damaged))]
        try:
            expected = encode_message(message_from_proto(ProtoMessage.FromString(bytes(damaged))))
        except Exception:
            expected = None
        try:
            got = encode_message(decode_message(bytes(damaged)))
        except Exception:
            got = None
        assert got == expected


def test_state_is_saved_after_every_message_and_survives_a_restart(tmp_path: Path) -> None:
    first = _runner(tmp_path)
    for i in range(2):
        reply = decode_message(first.handle(encode_message(_train_message(msg_id=f"a{i}"))).body)
    assert reply.content["metrics"]["n"] == 2
    assert reply.metadata.reply_to_message_id == "a1" and reply.metadata.message_id
    restarted = _runner(tmp_path)  # a new process: nothing in memory
    reply = decode_message(restarted.handle(encode_message(_train_message(msg_id="b"))).body)
    assert reply.content["metrics"]["n"] == 3
    assert reply.content["metrics"]["pid"] == 3
    saved = ContextStore(tmp_path).load(77, NODE)
    assert saved is not None and saved.state["c"]["n"] == 3


def test_a_message_handled_again_after_a_lost_reply_runs_from_the_state_before_it(
    tmp_path: Path,
) -> None:
    first = _runner(tmp_path)
    first.handle(encode_message(_train_message(msg_id="a")))
    first.handle(encode_message(_train_message(msg_id="b")))  # saved; its reply never written
    restarted = _runner(tmp_path)  # the process was killed: "b" is still due
    reply = decode_message(restarted.handle(encode_message(_train_message(msg_id="b"))).body)
    assert reply.content["metrics"]["n"] == 2, "b moved the state on once, not twice"
    after = decode_message(restarted.handle(encode_message(_train_message(msg_id="c"))).body)
    assert after.content["metrics"]["n"] == 3
    again = _runner(tmp_path)  # a plain restart: the state after "c" is kept
    reply = decode_message(again.handle(encode_message(_train_message(msg_id="d"))).body)
    assert reply.content["metrics"]["n"] == 4


def test_a_message_that_leaves_the_state_alone_writes_no_file_and_resumes_right(
    tmp_path: Path,
) -> None:
    runner = _runner(tmp_path)
    runner.handle(encode_message(_train_message(msg_id="a")))
    saved = ContextStore(tmp_path).path(77, NODE)
    before = saved.stat()
    runner.handle(encode_message(_train_message(msg_id="r", read_only=True)))
    after = saved.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # killed before the reply to "r" was written: "r" comes again, from the state after "a"
    restarted = _runner(tmp_path)
    reply = decode_message(
        restarted.handle(encode_message(_train_message(msg_id="r", read_only=True))).body
    )
    assert reply.content["metrics"]["n"] == 1
    reply = decode_message(restarted.handle(encode_message(_train_message(msg_id="b"))).body)
    assert reply.content["metrics"]["n"] == 2
    assert saved.stat().st_ino != before.st_ino, "a changed state is saved again"


def test_a_save_interrupted_between_its_renames_resumes_the_previous_state(
    tmp_path: Path,
) -> None:
    runner = _runner(tmp_path)
    runner.handle(encode_message(_train_message(msg_id="a")))
    runner.handle(encode_message(_train_message(msg_id="b")))
    store = ContextStore(tmp_path)
    store.path(77, NODE).unlink()  # as if killed after moving the old save aside
    reply = decode_message(
        _runner(tmp_path).handle(encode_message(_train_message(msg_id="x"))).body
    )
    assert reply.content["metrics"]["n"] == 2


def test_a_raising_clientapp_becomes_an_error_reply_and_keeps_old_state(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    runner.handle(encode_message(_train_message(msg_id="ok")))
    outcome = runner.handle(encode_message(_train_message(msg_id="x", explode=True)))
    reply = decode_message(outcome.body)
    assert outcome.failed and reply.has_error()
    assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert "boom" in reply.error.reason and reply.metadata.reply_to_message_id == "x"
    saved = ContextStore(tmp_path).load(77, NODE)
    assert saved is not None and "dirty" not in saved.state  # half-done changes not saved
    again = decode_message(runner.handle(encode_message(_train_message(msg_id="y"))).body)
    assert again.content["metrics"]["n"] == 2 and "dirty" not in again.content


def test_a_reply_that_answers_another_message_is_an_error(tmp_path: Path) -> None:
    msg = _train_message()
    msg.metadata.__dict__["_message_type"] = "evaluate"
    reply = decode_message(_runner(tmp_path).handle(encode_message(msg)).body)
    assert reply.has_error() and "reply_to=msg" in reply.error.reason


def test_a_message_for_another_node_is_refused(tmp_path: Path) -> None:
    reply = decode_message(_runner(tmp_path).handle(encode_message(_train_message(dst=9))).body)
    assert reply.has_error() and reply.error.code == ErrorCode.NODE_UNAVAILABLE


def test_stop_is_handled_by_the_runner_not_the_clientapp(tmp_path: Path) -> None:
    stop = make_stop_message(NODE, 77)
    stop.metadata.__dict__["_message_id"] = "s"
    outcome = _runner(tmp_path).handle(encode_message(stop))
    reply = decode_message(outcome.body)
    assert outcome.stop and not outcome.failed
    assert reply.content["fedbox"]["action"] == "stopped"


def test_join_is_answered_by_the_runner_without_loading_the_clientapp(tmp_path: Path) -> None:
    def never_loaded() -> ClientApp:
        raise AssertionError("a join must not load the ClientApp")

    runner = NodeRunner(never_loaded, NODE, {}, ContextStore(tmp_path))
    join = make_join_message(NODE, 77, ttl=60)
    join.metadata.__dict__["_message_id"] = "j"
    outcome = runner.handle(encode_message(join))
    reply = decode_message(outcome.body)
    assert not outcome.stop and not outcome.failed
    assert reply.content["fedbox"]["action"] == "joined"
    assert reply.metadata.reply_to_message_id == "j"


def test_a_damaged_context_file_starts_afresh(tmp_path: Path) -> None:
    store = ContextStore(tmp_path)
    store.path(77, NODE).parent.mkdir(parents=True, exist_ok=True)
    store.path(77, NODE).write_bytes(b"\xff not a protobuf")
    reply = decode_message(_runner(tmp_path).handle(encode_message(_train_message())).body)
    assert reply.content["metrics"]["n"] == 1


def _run_config_app(seen: list[tuple[dict, set[str]]]) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        seen.append((dict(context.run_config), set(msg.content)))
        return Message(RecordDict({"m": MetricRecord({"x": 1})}), reply_to=msg)

    return app


@pytest.mark.parametrize(
    ("trailer", "expected"),
    [({"x": 7, "name": "n"}, {"x": 7, "name": "n"}), ({}, {}), (None, {"x": 1, "d": True})],
)
def test_the_run_config_comes_from_the_body_else_the_default(
    tmp_path: Path, trailer: dict | None, expected: dict
) -> None:
    seen: list[tuple[dict, set[str]]] = []
    app = _run_config_app(seen)
    runner = NodeRunner(lambda: app, NODE, {}, ContextStore(tmp_path), {"x": 1, "d": True})
    encoder = BatchEncoder() if trailer is None else BatchEncoder(run_config_trailer(trailer))
    runner.handle(bytes(encoder.body(_train_message())))
    assert seen == [(expected, {"arrays", "config"})]
