"""Sends one train message per node per round and prints what came back."""

import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


def _describe(server_round: int, reply: Message) -> str:
    if reply.has_error():
        return f"round {server_round} node {reply.metadata.src_node_id} error {reply.error.reason}"
    m = reply.content["metrics"]
    return f"round {server_round} partition {int(m['partition'])} count {int(m['count'])}"


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    arrays = ArrayRecord([np.zeros(int(cfg["payload"]), dtype=np.float32)])
    for server_round in range(1, int(cfg["num-server-rounds"]) + 1):
        if server_round > 1:
            time.sleep(float(cfg["round-pause"]))
        config = ConfigRecord({"server-round": server_round})
        content = RecordDict({"arrays": arrays, "config": config})
        messages = [
            Message(content, dst_node_id=node_id, message_type=MessageType.TRAIN)
            for node_id in grid.get_node_ids()
        ]
        replies = list(grid.send_and_receive(messages))
        for reply in sorted(replies, key=lambda r: r.metadata.src_node_id):
            print(f"fbcount {_describe(server_round, reply)}", flush=True)
        print(f"fbcount round {server_round} replies {len(replies)}", flush=True)
    print("fbcount done", flush=True)
