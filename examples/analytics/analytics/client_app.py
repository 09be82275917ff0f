"""The analytics ClientApp: answers histogram queries about local rows only.

A site's data is ``data.csv`` in its ``data-path`` (header row, numeric
columns) when there is one, otherwise its share of scikit-learn's bundled
breast-cancer table, so the example runs with nothing to download.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from sklearn.datasets import load_breast_cancer

app = ClientApp()


def _column(context: Context, feature: str) -> np.ndarray:
    data_path = str(context.node_config.get("data-path", ""))
    csv_file = Path(data_path) / "data.csv" if data_path else None
    if csv_file is not None and csv_file.is_file():
        with csv_file.open(newline="") as f:
            return np.array([float(row[feature]) for row in csv.DictReader(f)])
    table = load_breast_cancer()
    names = list(table.feature_names)
    if feature not in names:
        raise KeyError(f"unknown feature {feature!r}; choose one of {names}")
    column = table.data[:, names.index(feature)]
    pid = int(context.node_config["partition-id"])
    num = int(context.node_config["num-partitions"])
    return np.array_split(column, num)[pid]


@app.query()
def histogram(msg: Message, context: Context) -> Message:
    """Count local values into the bins the server asked for; never raw rows."""
    query: ConfigRecord = msg.content["query"]
    values = _column(context, str(query["feature"]))
    if len(values) < int(query["min-rows"]):
        raise ValueError(f"only {len(values)} rows here, fewer than min-rows")
    edges = np.linspace(
        float(query["bin-min"]), float(query["bin-max"]), int(query["num-bins"]) + 1
    )
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    metrics = MetricRecord(
        {
            "counts": [int(c) for c in counts],
            "sum": float(values.sum()),
            "num-examples": len(values),
        }
    )
    return Message(content=RecordDict({"histogram": metrics}), reply_to=msg)
