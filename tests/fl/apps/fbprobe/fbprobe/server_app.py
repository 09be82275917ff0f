"""Queries every node once and prints what each one saw, one JSON line per node."""

from flwr.app import Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    messages = [
        Message(RecordDict(), dst_node_id=node_id, message_type=MessageType.QUERY)
        for node_id in grid.get_node_ids()
    ]
    for reply in grid.send_and_receive(messages):
        if reply.has_error():
            print(f"fbprobe error {reply.error.reason}", flush=True)
        else:
            print(f"fbprobe seen {reply.content['seen']['json']}", flush=True)
