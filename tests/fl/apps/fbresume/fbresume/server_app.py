"""Rounds of train (push, then pull until every node answered) and evaluate
(send_and_receive); writes the model it holds after each round to $OUTPUT_DIR."""

import os
import time
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


def _pull_all(grid: Grid, ids: list[str]) -> list[Message]:
    replies: list[Message] = []
    pending = set(ids)
    while pending:
        for reply in grid.pull_messages(sorted(pending)):
            pending.discard(reply.metadata.reply_to_message_id)
            replies.append(reply)
        if pending:
            time.sleep(0.05)
    return replies


def _aggregate(replies: list[Message]) -> list[np.ndarray]:
    """Weighted mean, in node order, so the result does not depend on arrival order."""
    good = sorted((r for r in replies if not r.has_error()), key=lambda r: r.metadata.src_node_id)
    if len(good) != len(replies):
        raise RuntimeError(f"{len(replies) - len(good)} error replies")
    weights = [float(r.content["metrics"]["num-examples"]) for r in good]
    arrays = [r.content["arrays"].to_numpy_ndarrays() for r in good]
    total = sum(weights)
    return [
        (
            sum(w * a[i].astype(np.float64) for w, a in zip(weights, arrays, strict=True)) / total
        ).astype(np.float32)
        for i in range(len(arrays[0]))
    ]


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    size = int(cfg["size"])
    if cfg["unseeded"]:
        model = [np.random.default_rng().random(size).astype(np.float32)]
    else:
        model = [np.random.rand(size).astype(np.float32)]  # fedbox seeds the global generator
    out = Path(os.environ.get("OUTPUT_DIR", "."))
    out.mkdir(parents=True, exist_ok=True)
    nodes = sorted(grid.get_node_ids())
    last = min(int(cfg["num-server-rounds"]), int(os.environ.get("FBRESUME_LAST_ROUND", "99")))
    for server_round in range(1, last + 1):
        if server_round > 1:
            time.sleep(float(os.environ.get("FBRESUME_ROUND_PAUSE", "0")))
        config = ConfigRecord({"server-round": server_round})
        content = RecordDict({"arrays": ArrayRecord(model), "config": config})
        messages = [
            Message(content, node, MessageType.TRAIN, group_id=str(server_round)) for node in nodes
        ]
        model = _aggregate(_pull_all(grid, grid.push_messages(messages)))
        np.save(out / f"round-{server_round}.npy", model[0])
        content = RecordDict({"arrays": ArrayRecord(model), "config": config})
        messages = [
            Message(content, node, MessageType.EVALUATE, group_id=str(server_round))
            for node in nodes
        ]
        replies = grid.send_and_receive(messages)
        losses = sorted(float(r.content["metrics"]["loss"]) for r in replies if not r.has_error())
        print(f"fbresume round {server_round} losses {losses}", flush=True)
    np.save(out / "final.npy", model[0])
    print("fbresume done", flush=True)
