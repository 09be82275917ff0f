"""The analytics ServerApp: one query round, merged histogram printed."""

from __future__ import annotations

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Ask every site for its histogram, add them up, print the result."""
    cfg = context.run_config
    query = ConfigRecord(
        {k: cfg[k] for k in ("feature", "bin-min", "bin-max", "num-bins", "min-rows")}
    )
    node_ids = list(grid.get_node_ids())
    messages = [
        Message(RecordDict({"query": query}), dst_node_id=node_id, message_type=MessageType.QUERY)
        for node_id in node_ids
    ]
    replies = list(grid.send_and_receive(messages))
    num_bins = int(cfg["num-bins"])
    total = np.zeros(num_bins, dtype=np.int64)
    rows, value_sum, failed = 0, 0.0, 0
    for reply in replies:
        if reply.has_error():
            failed += 1
            print(f"analytics: node {reply.metadata.src_node_id} failed: {reply.error.reason}")
            continue
        hist = reply.content["histogram"]
        total += np.asarray(hist["counts"], dtype=np.int64)
        rows += int(hist["num-examples"])
        value_sum += float(hist["sum"])
    answered = len(replies) - failed
    print(f"analytics: {answered}/{len(node_ids)} sites answered, {rows} rows in total")
    if rows:
        print(f"analytics: mean {cfg['feature']} = {value_sum / rows:.4f}")
    edges = np.linspace(float(cfg["bin-min"]), float(cfg["bin-max"]), num_bins + 1)
    peak = max(int(total.max()), 1)
    for lo, hi, count in zip(edges[:-1], edges[1:], total, strict=True):
        bar = "#" * round(40 * int(count) / peak)
        print(f"analytics: [{lo:6.2f}, {hi:6.2f}) {int(count):5d} {bar}")
    context.state["histogram"] = ConfigRecord({"counts": [int(c) for c in total], "rows": rows})
