"""Model, data and training for the digits app: plain NumPy, no downloads.

The data is scikit-learn's bundled 8x8 digits (1,797 images). A fixed seed
shuffles it once; 20% is held out for the server's evaluation, the rest is
split across ``num-partitions`` clients: IID by default, or skewed by label
with a Dirichlet draw (``iid = false``), the usual way to simulate non-IID
sites.
"""

from __future__ import annotations

import functools

import numpy as np
from sklearn.datasets import load_digits

NUM_FEATURES = 64
NUM_CLASSES = 10
TEST_FRACTION = 0.2


@functools.cache
def _shuffled(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Loaded once per process (read-only): parsing the bundled CSV takes ~7 ms, which
    a process hosting many virtual clients would otherwise pay on every message."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    x.flags.writeable = y.flags.writeable = False
    return x, y


def load_test_data(seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The server's held-out split; no client ever sees it."""
    x, y = _shuffled(seed)
    n_test = int(len(y) * TEST_FRACTION)
    return x[:n_test], y[:n_test]


def _partition_indices(
    y: np.ndarray, partition_id: int, num_partitions: int, iid: bool, alpha: float, seed: int
) -> np.ndarray:
    if iid:
        return np.array_split(np.arange(len(y)), num_partitions)[partition_id]
    # Label skew: for every class, a Dirichlet(alpha) draw decides which share of
    # that class each partition gets. Small alpha means few classes per client.
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(num_partitions)]
    for label in range(NUM_CLASSES):
        idx = np.flatnonzero(y == label)
        shares = rng.dirichlet([alpha] * num_partitions)
        cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
            part.extend(chunk.tolist())
    return np.sort(np.array(parts[partition_id], dtype=np.int64))


def load_partition(
    partition_id: int,
    num_partitions: int,
    iid: bool = True,
    alpha: float = 0.5,
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """This client's (x_train, y_train, x_val, y_val): 80/20 of its partition."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} is outside 0..{num_partitions - 1}")
    x, y = _shuffled(seed)
    n_test = int(len(y) * TEST_FRACTION)
    x, y = x[n_test:], y[n_test:]
    idx = _partition_indices(y, partition_id, num_partitions, iid, alpha, seed)
    n_val = max(1, len(idx) // 5)
    return x[idx[n_val:]], y[idx[n_val:]], x[idx[:n_val]], y[idx[:n_val]]


def init_params() -> list[np.ndarray]:
    """Zero weights: softmax regression is convex, so the start does not matter."""
    return [
        np.zeros((NUM_FEATURES, NUM_CLASSES), dtype=np.float32),
        np.zeros(NUM_CLASSES, dtype=np.float32),
    ]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train(
    params: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int = 0,
) -> tuple[list[np.ndarray], float]:
    """Mini-batch SGD on cross-entropy; returns new params and the mean loss."""
    w, b = (p.astype(np.float32, copy=True) for p in params)
    rng = np.random.default_rng(seed)
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[y]
    losses: list[float] = []
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            batch = order[start : start + batch_size]
            probs = _softmax(x[batch] @ w + b)
            losses.append(float(-np.log(probs[np.arange(len(batch)), y[batch]] + 1e-9).mean()))
            grad = (probs - onehot[batch]) / len(batch)
            w -= lr * (x[batch].T @ grad)
            b -= lr * grad.sum(axis=0)
    return [w, b], float(np.mean(losses)) if losses else 0.0


def evaluate(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) of the model on (x, y)."""
    w, b = params
    probs = _softmax(x @ w + b)
    loss = float(-np.log(probs[np.arange(len(y)), y] + 1e-9).mean())
    accuracy = float((probs.argmax(axis=1) == y).mean())
    return loss, accuracy
