"""The digits ServerApp: FedAvg with a server-side evaluation every round."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from digits import task

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Train for ``num-server-rounds`` rounds and report the test accuracy."""
    cfg = context.run_config
    x_test, y_test = task.load_test_data(seed=int(cfg.get("seed", 42)))

    def global_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        loss, accuracy = task.evaluate(arrays.to_numpy_ndarrays(), x_test, y_test)
        return MetricRecord({"test-loss": loss, "test-accuracy": accuracy})

    num_nodes = len(list(grid.get_node_ids()))
    strategy = FedAvg(
        fraction_train=float(cfg["fraction-train"]),
        fraction_evaluate=float(cfg.get("fraction-evaluate", 1.0)),
        min_train_nodes=1,
        min_evaluate_nodes=1,
        min_available_nodes=max(1, min(2, num_nodes)),
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(task.init_params()),
        train_config=ConfigRecord({"lr": float(cfg["lr"])}),
        num_rounds=int(cfg["num-server-rounds"]),
        evaluate_fn=global_evaluate,
    )
    rounds = sorted(result.evaluate_metrics_serverapp)
    final = result.evaluate_metrics_serverapp[rounds[-1]] if rounds else {}
    print(f"digits: final test accuracy {float(final.get('test-accuracy', 0.0)):.4f}")
