"""FedAvg for large models: the aggregator holds N + 2 models at most, where Flower's holds 2N + 2.

Two things in Flower's ``FedAvg`` keep models alive that a round no longer needs.

- ``Strategy.start`` keeps the initial model to the end, and a round's replies until the
  next round's have all arrived: with N clients, 2N + 2 models in round 2 onwards.
- ``aggregate_arrayrecords`` turns each reply's array into a fresh ndarray, multiplies it
  into another, keeps the running sum in a third, and then serialises the sum through a
  ``BytesIO``: for a model that is one big array, up to four models beyond the replies.

Here ``start`` lets replies go once they are averaged and a model once it is replaced,
and each reply array is read where it lies (a view into its serialized bytes) while the
weighted sum is computed a few MiB at a time straight into the bytes of the new
``Array``. The arithmetic and its order are Flower's, element by element, so the models
are bit for bit the same: only the peak changes, to the N replies, the model they
answer and the new one.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterable
from logging import INFO
from typing import cast

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.constant import SType
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg
from flwr.serverapp.strategy import Result
from flwr.serverapp.strategy.strategy_utils import log_strategy_start_info

from fedbox.fl.codec import records_of

__all__ = ["FedAvg", "weighted_average"]

_SLICE_BYTES = 4 << 20
_HEADER_PREFIX = 12  # magic (6), version (2), header length (2 in v1, 4 in v2 and v3)


class FedAvg(FlowerFedAvg):
    """Flower's ``FedAvg`` in the memory of N + 2 models.

    A drop-in replacement: same arguments, same results, same logs. Pass
    ``initial_arrays`` without keeping a reference if that model should go too once
    the first round replaces it.
    """

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
    ) -> Result:
        log(INFO, "Starting %s strategy:", self.__class__.__name__)
        log_strategy_start_info(num_rounds, initial_arrays, train_config, evaluate_config)
        self.summary()
        log(INFO, "")
        train_config = ConfigRecord() if train_config is None else train_config
        evaluate_config = ConfigRecord() if evaluate_config is None else evaluate_config
        result = Result()
        began = time.time()
        arrays = initial_arrays
        del initial_arrays  # from here on ``arrays`` is the only hold on the current model
        if evaluate_fn:
            metrics = evaluate_fn(0, arrays)
            log(INFO, "Initial global evaluation results: %s", metrics)
            if metrics is not None:
                result.evaluate_metrics_serverapp[0] = metrics
        for server_round in range(1, num_rounds + 1):
            log(INFO, "")
            log(INFO, "[ROUND %s/%s]", server_round, num_rounds)
            messages = list(self.configure_train(server_round, arrays, train_config, grid))
            replies = list(grid.send_and_receive(messages=messages, timeout=timeout))
            new_arrays, train_metrics = self.aggregate_train(server_round, replies)
            del messages, replies  # averaged: N models fewer before the next round's come
            if new_arrays is not None:
                result.arrays = arrays = new_arrays
            if train_metrics is not None:
                log(INFO, "\t└──> Aggregated MetricRecord: %s", train_metrics)
                result.train_metrics_clientapp[server_round] = train_metrics
            messages = list(self.configure_evaluate(server_round, arrays, evaluate_config, grid))
            replies = list(grid.send_and_receive(messages=messages, timeout=timeout))
            evaluate_metrics = self.aggregate_evaluate(server_round, replies)
            del messages, replies
            if evaluate_metrics is not None:
                log(INFO, "\t└──> Aggregated MetricRecord: %s", evaluate_metrics)
                result.evaluate_metrics_clientapp[server_round] = evaluate_metrics
            if evaluate_fn:
                log(INFO, "Global evaluation")
                metrics = evaluate_fn(server_round, arrays)
                log(INFO, "\t└──> MetricRecord: %s", metrics)
                if metrics is not None:
                    result.evaluate_metrics_serverapp[server_round] = metrics
        log(INFO, "")
        log(INFO, "Strategy execution finished in %.2fs", time.time() - began)
        log(INFO, "")
        log(INFO, "Final results:")
        log(INFO, "")
        for line in str(result).splitlines():
            log(INFO, "\t%s", line)
        log(INFO, "")
        return result

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        contents = [msg.content for msg in valid]
        arrays = weighted_average(contents, self.weighted_by_key)
        return arrays, self.train_metrics_aggr_fn(contents, self.weighted_by_key)


def weighted_average(records: list[RecordDict], weighting_metric_name: str) -> ArrayRecord:
    """Flower's ``aggregate_arrayrecords``, computed slice by slice into the new bytes."""
    # scalars: the replies' check refused a list under this key (as in Flower, a cast)
    weights = [
        cast(float, next(records_of(r, MetricRecord))[1][weighting_metric_name]) for r in records
    ]
    total = sum(weights)
    parts: dict[str, list[tuple[Array, float]]] = {}
    for record, weight in zip(records, weights, strict=True):
        for _, array_record in records_of(record, ArrayRecord):
            for key, array in array_record.items():
                parts.setdefault(key, []).append((array, weight / total))
    return ArrayRecord({key: _average(terms) for key, terms in parts.items()})


def _average(terms: list[tuple[Array, float]]) -> Array:
    views = [_view(array) for array, _ in terms]
    shapes = {view.shape for view in views if view is not None}
    if any(view is None for view in views) or len(shapes) != 1:
        return _average_as_flower(terms)
    weights = [weight for _, weight in terms]
    flat = [view.reshape(-1) for view in views if view is not None]
    dtype = (flat[0][:0] * weights[0]).dtype
    shape = shapes.pop()
    header = _npy_header(dtype, shape)
    size = len(header) + flat[0].size * dtype.itemsize
    out = io.BytesIO()
    out.seek(size - 1)
    out.write(b"\0")  # one allocation of the final size, never grown by copying
    out.seek(0)
    out.write(header)
    step = max(1, _SLICE_BYTES // max(1, dtype.itemsize))
    for start in range(0, flat[0].size, step):
        part = slice(start, start + step)
        acc = flat[0][part] * weights[0]
        for view, weight in zip(flat[1:], weights[1:], strict=True):
            acc += view[part] * weight
        out.write(acc.data)
    data = out.getvalue()  # the buffer itself, not a copy, while nothing else exports it
    return Array(dtype=str(dtype), shape=shape, stype=SType.NUMPY, data=data)


def _average_as_flower(terms: list[tuple[Array, float]]) -> Array:
    """Flower's own arithmetic, for what a view cannot cover (other stypes, layouts)."""
    acc = terms[0][0].numpy() * terms[0][1]
    for array, weight in terms[1:]:
        acc += array.numpy() * weight
    return Array(np.asarray(acc))


def _view(array: Array) -> np.ndarray | None:
    """The array inside ``array.data`` without copying it; None unless plain C order."""
    if array.stype != SType.NUMPY or len(array.data) < _HEADER_PREFIX:
        return None
    prefix = io.BytesIO(array.data[:_HEADER_PREFIX])
    major, _ = np.lib.format.read_magic(prefix)
    length_bytes = 2 if major == 1 else 4
    header_end = 8 + length_bytes + int.from_bytes(array.data[8 : 8 + length_bytes], "little")
    head = io.BytesIO(array.data[8:header_end])
    read_header = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    shape, fortran_order, dtype = read_header(head)
    if fortran_order or dtype.hasobject or dtype.names is not None:
        return None
    count = math.prod(shape)
    if len(array.data) != header_end + count * dtype.itemsize:
        return None
    flat = np.frombuffer(array.data, dtype=dtype, count=count, offset=header_end)
    return flat.reshape(shape)


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The header ``np.save`` writes for a C-ordered array of ``dtype`` and ``shape``."""
    fields = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    out = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(out, fields)
    except ValueError:
        out = io.BytesIO()
        np.lib.format.write_array_header_2_0(out, fields)
    return out.getvalue()
