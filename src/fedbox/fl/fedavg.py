"""FedAvg whose aggregation needs one model of extra memory, where Flower's needs three.

Flower's ``aggregate_arrayrecords`` turns each reply's array into a fresh ndarray,
multiplies it into another, keeps the running sum in a third, and then serialises the
sum through a ``BytesIO``. For a model that is one big array the aggregator holds, for a
moment, three or four models beyond the replies and the global one: that is what keeps
a 3 GB model from fitting in ``(clients + 2) x model``. Here each reply array is read
where it lies (a view into its serialized bytes) and the weighted sum is computed a few
MiB at a time straight into the bytes of the new ``Array``. The operations and their
order are Flower's, element by element, so the result is bit for bit the same.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.common.constant import SType
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

__all__ = ["FedAvg", "weighted_average"]

_SLICE_BYTES = 4 << 20
_HEADER_PREFIX = 12  # magic (6), version (2), header length (2 in v1, 4 in v2 and v3)


class FedAvg(FlowerFedAvg):
    """Flower's ``FedAvg``, aggregating the replies' arrays in place of copies.

    A drop-in replacement: same arguments, same results, same logs; only the memory
    the aggregation needs changes (a few MiB instead of up to three models).
    """

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
    weights = [next(iter(r.metric_records.values()))[weighting_metric_name] for r in records]
    total = sum(weights)  # type: ignore[arg-type]
    parts: dict[str, list[tuple[Array, float]]] = {}
    for record, weight in zip(records, weights, strict=True):
        for array_record in record.array_records.values():
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
    header = _npy_header(dtype, shapes.pop())
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
    return Array(dtype=str(dtype), shape=views[0].shape, stype=SType.NUMPY, data=data)


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
