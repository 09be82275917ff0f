"""The digits ClientApp: trains and evaluates on this node's partition."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from digits import task

app = ClientApp()


def _data(context: Context):
    cfg = context.run_config
    return task.load_partition(
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        iid=bool(cfg.get("iid", True)),
        alpha=float(cfg.get("dirichlet-alpha", 0.5)),
        seed=int(cfg.get("seed", 42)),
    )


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Run local SGD from the global model and send back the new weights."""
    x_train, y_train, _, _ = _data(context)
    params = msg.content["arrays"].to_numpy_ndarrays()
    config = msg.content["config"]
    lr = float(config.get("lr", context.run_config["lr"]))
    server_round = int(config.get("server-round", 0))
    new_params, loss = task.train(
        params,
        x_train,
        y_train,
        epochs=int(context.run_config["local-epochs"]),
        lr=lr,
        batch_size=int(context.run_config["batch-size"]),
        seed=server_round * 1000 + int(context.node_config["partition-id"]),
    )
    # Context.state survives between messages (and, under fedbox, restarts).
    rounds = context.state.get("progress", MetricRecord({"rounds-trained": 0}))
    rounds["rounds-trained"] = int(rounds["rounds-trained"]) + 1
    context.state["progress"] = rounds
    metrics = MetricRecord(
        {
            "train-loss": loss,
            "num-examples": len(y_train),
            "rounds-trained": int(rounds["rounds-trained"]),
        }
    )
    content = RecordDict({"arrays": ArrayRecord(new_params), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate the global model on this node's validation split."""
    _, _, x_val, y_val = _data(context)
    params = msg.content["arrays"].to_numpy_ndarrays()
    loss, accuracy = task.evaluate(params, x_val, y_val)
    metrics = MetricRecord(
        {"eval-loss": loss, "eval-accuracy": accuracy, "num-examples": len(y_val)}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
