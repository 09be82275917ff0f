"""A NumPyClient whose metrics (accuracy, and its partition) travel in ConfigRecords."""

from flwr.client import ClientApp, NumPyClient
from flwr.common import Context


class Counter(NumPyClient):
    def __init__(self, partition: int) -> None:
        self.partition = partition

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        return [p + 1 for p in parameters], 10, {"accuracy": 0.25 * (self.partition + 1)}

    def evaluate(self, parameters, config):  # type: ignore[no-untyped-def]
        return 0.5, 10, {"eval-accuracy": 0.5 + 0.25 * self.partition}


def client_fn(context: Context):  # type: ignore[no-untyped-def]
    return Counter(int(context.node_config["partition-id"])).to_client()


app = ClientApp(client_fn=client_fn)
