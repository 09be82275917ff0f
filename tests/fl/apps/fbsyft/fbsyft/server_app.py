"""server_fn with syft-flwr's FedAvgWithModelSaving, checkpoints under $OUTPUT_DIR."""

import os
from pathlib import Path

import numpy as np
from flwr.common import Context, ndarrays_to_parameters
from flwr.server import ServerApp, ServerAppComponents, ServerConfig


def report(metrics):
    from_data = sum(m["from-data-dir"] for _, m in metrics)
    print(f"fbsyft evaluated by {len(metrics)} clients, {from_data} from DATA_DIR", flush=True)
    return {"accuracy": sum(m["accuracy"] for _, m in metrics) / len(metrics)}


def server_fn(context: Context) -> ServerAppComponents:
    from syft_flwr.strategy import FedAvgWithModelSaving

    save_path = Path(os.environ["OUTPUT_DIR"]) / "weights"
    print(f"fbsyft saving to {save_path}", flush=True)
    strategy = FedAvgWithModelSaving(
        save_path=save_path,
        min_available_clients=2,
        min_fit_clients=2,
        min_evaluate_clients=2,
        initial_parameters=ndarrays_to_parameters([np.zeros(1, dtype=np.float32)]),
        evaluate_metrics_aggregation_fn=report,
    )
    return ServerAppComponents(
        config=ServerConfig(num_rounds=int(context.run_config["num-server-rounds"])),
        strategy=strategy,
    )


app = ServerApp(server_fn=server_fn)
