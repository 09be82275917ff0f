"""FedAvg over a one-number model for ``num-server-rounds`` rounds, training only."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1)
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord([np.zeros(1)]),
        num_rounds=int(context.run_config["num-server-rounds"]),
    )
