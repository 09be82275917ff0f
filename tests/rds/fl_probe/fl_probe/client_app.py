"""Each client sends back its weights plus one, and metrics about its sandbox: the value
in its private data, whether the owner's state dir is visible, whether the daemon's
environment leaked in."""

from __future__ import annotations

import os
import time
from pathlib import Path

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    time.sleep(float(context.run_config["round-pause"]))  # slow rounds, for late joiners
    arrays = [a + 1 for a in msg.content["arrays"].to_numpy_ndarrays()]
    value = int((Path(os.environ["DATA_DIR"]) / "value.txt").read_text())
    probe = str(context.run_config["probe-path"])
    rounds = int(context.state.get("seen", MetricRecord({"n": 0}))["n"]) + 1
    context.state["seen"] = MetricRecord({"n": rounds})
    print("probe client trained round", rounds)  # must reach the log, not the pipe
    metrics = MetricRecord(
        {
            "num-examples": 1,
            "data-value": value,
            "sees-state": int(bool(probe) and Path(probe).exists()),
            "leaked-env": int("FEDBOX_HOME" in os.environ),
            "rounds-seen": rounds,
        }
    )
    return Message(RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics}), reply_to=msg)
