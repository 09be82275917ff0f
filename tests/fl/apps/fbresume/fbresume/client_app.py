"""Trains deterministically; keeps the ids of the messages it handled in context.state
and refuses one it has handled before (a message handled twice would be a bug)."""

import os
import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


def _handle(msg: Message, context: Context) -> int:
    """Note ``msg`` as handled; how many messages this node has handled in the run."""
    handled = context.state.get("handled", ConfigRecord({"ids": [""]}))
    ids = list(handled["ids"])
    if msg.metadata.message_id in ids:
        raise RuntimeError(f"message {msg.metadata.message_id} handled twice")
    ids.append(msg.metadata.message_id)
    handled["ids"] = ids
    context.state["handled"] = handled
    return len(ids) - 1


def _pause(variable: str, context: Context) -> None:
    """Sleep ``$variable`` seconds, on every node or only on ``$FBRESUME_SLOW_PARTITION``."""
    pid = str(context.node_config["partition-id"])
    if os.environ.get("FBRESUME_SLOW_PARTITION", pid) == pid:
        time.sleep(float(os.environ.get(variable, "0")))


@app.train()
def train(msg: Message, context: Context) -> Message:
    _pause("FBRESUME_TRAIN_PAUSE", context)
    pid = int(context.node_config["partition-id"])
    count = _handle(msg, context)
    step = np.float32((pid + 1) * count)
    arrays = [
        (a * np.float32(0.5) + step).astype(np.float32)
        for a in msg.content["arrays"].to_numpy_ndarrays()
    ]
    metrics = MetricRecord({"num-examples": pid + 1, "count": count})
    return Message(RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    _pause("FBRESUME_EVALUATE_PAUSE", context)
    count = _handle(msg, context)
    model = msg.content["arrays"].to_numpy_ndarrays()[0]
    metrics = MetricRecord({"loss": float(model.mean()), "count": count, "num-examples": 1})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
