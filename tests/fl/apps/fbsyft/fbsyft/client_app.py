"""A NumPyClient whose data comes from syft-flwr's data dir when there is one."""

import numpy as np
from flwr.client import ClientApp, NumPyClient
from flwr.common import Context


class MeanClient(NumPyClient):
    """Moves the model towards the mean of its data; reports where the data came from."""

    def __init__(self, data: np.ndarray, from_data_dir: bool) -> None:
        self.data = data
        self.from_data_dir = from_data_dir

    def fit(self, parameters, config):
        return [np.array([self.data.mean()], dtype=np.float32)], len(self.data), {}

    def evaluate(self, parameters, config):
        loss = float(abs(parameters[0][0] - self.data.mean()))
        metrics = {"accuracy": 1.0 / (1.0 + loss), "from-data-dir": int(self.from_data_dir)}
        return loss, len(self.data), metrics


def client_fn(context: Context):
    from syft_flwr.utils import get_syftbox_dataset_path, run_syft_flwr

    if run_syft_flwr():
        data = np.loadtxt(get_syftbox_dataset_path() / "values.csv", ndmin=1)
    else:
        data = np.arange(10, dtype=np.float32) + int(context.node_config["partition-id"])
    return MeanClient(data, run_syft_flwr()).to_client()


app = ClientApp(client_fn=client_fn)
