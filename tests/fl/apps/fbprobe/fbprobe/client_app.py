"""Answers a query with the thread settings and node_config its process sees, a
number drawn from NumPy's global generator, unseeded, and its process id."""

import atexit
import json
import os

import numpy as np
import torch  # the app dir's stand-in: imported by the app, as PyTorch apps do
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from threadpoolctl import threadpool_info

app = ClientApp()

if os.environ.get("FBPROBE_EXIT_DIR"):  # says, when the process ends, that it ran this
    atexit.register(
        lambda: open(os.path.join(os.environ["FBPROBE_EXIT_DIR"], str(os.getpid())), "w").close()
    )

VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OUTPUT_DIR")


@app.query()
def query(msg: Message, context: Context) -> Message:
    seen = {
        "env": {name: os.environ.get(name) for name in VARS},
        "torch": torch.get_num_threads(),
        "blas": sorted({pool["num_threads"] for pool in threadpool_info()}),
        "node_config": dict(context.node_config),
        "draw": int(np.random.randint(2**31)),
        "pid": os.getpid(),
    }
    return Message(RecordDict({"seen": ConfigRecord({"json": json.dumps(seen)})}), reply_to=msg)
