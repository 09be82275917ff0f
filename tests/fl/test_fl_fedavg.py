"""fedbox's FedAvg: Flower's results bit for bit, in one model of memory instead of three."""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords
from large_helpers import Federation

from fedbox.fl.fedavg import FedAvg, weighted_average


def reply(arrays: dict[str, np.ndarray], examples: float, **more: ArrayRecord) -> RecordDict:
    metrics = MetricRecord({"num-examples": examples, "loss": examples / 10})
    record = ArrayRecord({key: Array(value) for key, value in arrays.items()})
    return RecordDict({"arrays": record, "metrics": metrics, **more})


def cases() -> dict[str, list[RecordDict]]:
    rng = np.random.default_rng(7)
    dtypes = ["float32", "float64", "float16", "int32", "int64", "uint8", "bool", "complex64"]

    def arrays(seed: int) -> dict[str, np.ndarray]:
        r = np.random.default_rng(seed)
        return {d: (r.random((3, 5)) * 100).astype(d) for d in dtypes}

    big = [rng.random(3_000_001, dtype=np.float32) for _ in range(3)]
    fortran = [np.asfortranarray(rng.random((40, 30))) for _ in range(2)]
    return {
        "dtypes": [reply(arrays(s), s + 1) for s in range(3)],
        "several slices": [reply({"w": a}, n) for a, n in zip(big, (10, 25, 65), strict=True)],
        "int weights": [reply({"w": rng.random(10)}, n) for n in (3, 4)],
        "scalar and empty": [
            reply({"s": np.array(2.5), "e": np.zeros((0, 4), np.float32)}, n) for n in (1.0, 3.0)
        ],
        "fortran order": [reply({"f": a}, n) for a, n in zip(fortran, (1, 2), strict=True)],
        "broadcast shapes": [reply({"b": rng.random(s)}, n) for s, n in (((3, 4), 1), ((3, 1), 2))],
        "two array records": [
            reply({"a": rng.random(5)}, n, extra=ArrayRecord([rng.random(4)])) for n in (2, 5)
        ],
        "mixed dtypes": [reply({"m": rng.random(6).astype(d)}, 1) for d in ("float32", "float64")],
        "one reply": [reply({"w": rng.random((2, 2), dtype=np.float32)}, 9)],
    }


@pytest.mark.parametrize("name", list(cases()))
def test_weighted_average_is_flowers_bit_for_bit(name: str) -> None:
    records = cases()[name]
    ours = weighted_average(records, "num-examples")
    flowers = aggregate_arrayrecords(records, "num-examples")
    assert list(ours) == list(flowers)
    for key in flowers:
        assert ours[key] == flowers[key], key  # dtype, shape, stype and the serialized bytes


@pytest.mark.parametrize(
    ("damage", "says"),
    [(lambda data: b"not an npy file at all", "magic string"), (lambda data: data[:-3], "EOF")],
    ids=["garbage", "truncated"],
)
def test_a_damaged_reply_array_is_a_clear_error_and_changes_nothing(damage, says: str) -> None:
    good = Array(np.arange(4, dtype=np.float32))
    bad = Array(dtype="float32", shape=(4,), stype="numpy.ndarray", data=damage(good.data))
    records = [reply({}, 1), reply({}, 1)]
    records[0]["arrays"]["w"], records[1]["arrays"]["w"] = good, bad
    before = [dict(r["arrays"]) for r in records]
    with pytest.raises(ValueError, match=says):
        weighted_average(records, "num-examples")
    assert [dict(r["arrays"]) for r in records] == before


def test_averaging_three_replies_needs_one_model_of_memory() -> None:
    model = 32 << 20
    records = [
        reply({"w": np.full(model // 4, i, np.float32)}, i + 1, small=ArrayRecord([np.ones(3)]))
        for i in range(3)
    ]
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = weighted_average(records, "num-examples")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before < model + (12 << 20)
    expected = (0 * 1 + 1 * 2 + 2 * 3) / 6
    assert np.allclose(result["w"].numpy(), expected) and result["w"].numpy().size == model // 4


def weighted_app() -> ClientApp:
    """Each node trains differently and reports a different number of examples.

    The weights (1/4, 1/4, 1/2) and whole-number models keep every sum exact, so the result
    does not depend on the order in which replies arrive.
    """
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        node = int(context.node_config["partition-id"]) + 1
        record = msg.content["arrays"]
        arrays = ArrayRecord({k: Array(v.numpy() * node + node) for k, v in record.items()})
        metrics = MetricRecord({"num-examples": max(1, node - 1), "loss": 1.0 / node})
        return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        total = sum(float(a.numpy().sum()) for a in msg.content["arrays"].values())
        metrics = MetricRecord({"num-examples": 2, "total": total})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app


@pytest.fixture
def fed(root: Path) -> Iterator[Federation]:
    federation = Federation(root, 3, weighted_app)
    yield federation
    federation.close()


def test_fedbox_fedavg_trains_to_flowers_model_over_files(fed: Federation) -> None:
    rng = np.random.default_rng(3)
    initial = ArrayRecord(
        [rng.integers(0, 100, 50_000).astype(np.float32), rng.integers(-9, 9, (4, 3)) * 1.0]
    )

    def global_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        return MetricRecord({"total": sum(float(a.numpy().sum()) for a in arrays.values())})

    results = []
    for strategy_type in (FlowerFedAvg, FedAvg):
        strategy = strategy_type(min_available_nodes=3)
        config = ConfigRecord()
        results.append(strategy.start(fed.grid, initial, 2, 60, config, None, global_evaluate))
    flowers, ours = results
    assert ours.arrays == flowers.arrays
    assert ours.arrays != initial
    assert ours.train_metrics_clientapp == flowers.train_metrics_clientapp
    assert ours.evaluate_metrics_clientapp == flowers.evaluate_metrics_clientapp
    assert ours.evaluate_metrics_serverapp == flowers.evaluate_metrics_serverapp
    assert list(ours.evaluate_metrics_serverapp) == [0, 1, 2]


class CountingGrid(Grid):
    """The federation's FileGrid, counting the models whose data is still alive at each
    send: the initial one, each round's global one and every reply's, their arrays
    tracked by weak reference."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.tracked: list[tuple[weakref.ref[ArrayRecord], list[weakref.ref[Array]]]] = []
        self.alive_at_send: list[int] = []

    def track(self, arrays: ArrayRecord) -> ArrayRecord:
        if all(record() is not arrays for record, _ in self.tracked):
            self.tracked.append((weakref.ref(arrays), [weakref.ref(a) for a in arrays.values()]))
        return arrays

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        messages = list(messages)
        if not messages:
            return []
        gc.collect(1)  # as the FileGrid does on each push: young garbage goes
        alive = [any(ref() is not None for ref in model) for _, model in self.tracked]
        self.alive_at_send.append(sum(alive))
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        for msg in messages[:1] + replies:
            for arrays in msg.content.array_records.values():
                self.track(arrays)
        return replies

    def set_run(self, run_id: int) -> None:
        self.grid.set_run(run_id)

    @property
    def run(self):  # type: ignore[no-untyped-def]
        return self.grid.run

    def create_message(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)


def test_each_round_lets_go_of_the_replies_and_model_before_it(fed: Federation) -> None:
    grid = CountingGrid(fed.grid)
    strategy = FedAvg(fraction_evaluate=0.0, min_available_nodes=3)
    initial = ArrayRecord([np.ones(10_000, np.float32)])
    result = strategy.start(grid, grid.track(initial), num_rounds=3)
    assert result.arrays is not None
    # Rounds 2 and 3 hold nothing of the rounds before: not their replies, and not the
    # models they replaced, unless the caller keeps one (here the initial model).
    assert grid.alive_at_send == [1, 1, 1]  # no garbage collection needed
