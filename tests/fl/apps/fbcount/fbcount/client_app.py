"""Counts the train messages it got in context.state and says so."""

import os
import time

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    pid = int(context.node_config["partition-id"])
    if pid == int(context.run_config["fail-partition"]):
        raise RuntimeError(f"partition {pid} refuses to train")
    if pid == int(context.run_config["crash-partition"]):
        os._exit(3)
    time.sleep(float(context.run_config["train-pause"]))
    counter = context.state.get("counter", MetricRecord({"count": 0}))
    counter["count"] = int(counter["count"]) + 1
    context.state["counter"] = counter
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    metrics = MetricRecord({"count": int(counter["count"]), "partition": pid, "num-examples": 1})
    reply = RecordDict({"arrays": ArrayRecord([a + 1 for a in arrays]), "metrics": metrics})
    return Message(reply, reply_to=msg)
