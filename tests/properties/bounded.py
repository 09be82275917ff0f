"""The property every parser must have: accepted, or refused with a FedboxError, in
memory bounded by a multiple of its input (never by what the input declares); and JSON
values to put where a header expects something else."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

from hypothesis import strategies as st

from fedbox.errors import FedboxError

KIB = 1 << 10
MIB = 1 << 20


def accepted_or_refused(
    parse: Callable[[bytes], object], data: bytes, *, factor: int = 4, constant: int = 256 * KIB
) -> bool:
    """Run ``parse(data)``: True if it accepted ``data``, False if it raised a FedboxError.

    Any other exception propagates (the test fails on it). The peak of memory allocated
    meanwhile must stay within ``factor * len(data) + constant`` bytes.
    """
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        parse(data)
        accepted = True
    except FedboxError:
        accepted = False
    finally:
        peak = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()
    limit = factor * len(data) + constant
    assert peak <= limit, f"{peak} bytes allocated for {len(data)} bytes of input (limit {limit})"
    return accepted


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
"""JSON values of every kind (NaN and infinities too), nested a little."""
