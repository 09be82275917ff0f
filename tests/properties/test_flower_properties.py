"""Flower message bodies over arbitrary bytes and damaged protobuf: decoded, or refused
with NotAFlowerMessage (a FedboxError, and protobuf's DecodeError as before), from bytes
and from a payload; a length field claiming gigabytes allocates nothing for them."""

from __future__ import annotations

import random

import pytest
from bounded import MIB, accepted_or_refused
from hypothesis import example, given
from hypothesis import strategies as st

from fedbox.testing.parsers import decode_flower, decode_flower_payload, mutate, seeds

pytestmark = pytest.mark.timeout(240)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# Field numbers Flower's messages use (1-8), a few it does not, and the largest.
numbers = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8]) | st.sampled_from([9, 100, 2**29 - 1])


@st.composite
def fields(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One protobuf field: a varint, a fixed-size value, or length-delimited bytes that
    may hold more fields (nested messages), with a length that may lie."""
    number = draw(numbers)
    wire = draw(st.sampled_from([0, 1, 2, 2, 2, 5, 3, 4, 6, 7]))
    key = varint(number << 3 | wire)
    if wire == 0:
        return key + varint(draw(st.integers(min_value=0, max_value=2**64 - 1)))
    if wire in (1, 5):
        return key + draw(st.binary(min_size=0, max_size=8 if wire == 1 else 4))
    if wire != 2:
        return key
    if depth < 4 and draw(st.booleans()):
        inner = b"".join(draw(st.lists(fields(depth + 1), max_size=3)))
    else:
        inner = draw(st.binary(max_size=24))
    declared = draw(
        st.sampled_from(
            [len(inner)] * 6 + [len(inner) + 1, max(len(inner) - 1, 0), 2**31, 2**64 - 1]
        )
    )
    return key + varint(declared) + inner


messages = st.lists(fields(), max_size=5).map(b"".join)


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    """Messages nested far deeper than Flower's: protobuf's recursion limit is 100."""
    depth = draw(st.sampled_from([50, 101, 200, 5000]))
    number = draw(st.sampled_from([1, 2, 3]))
    body = b""
    for _ in range(depth):
        body = varint(number << 3 | 2) + varint(len(body)) + body
    return body


damaged_seeds = st.builds(
    mutate, st.randoms(use_true_random=False), st.sampled_from(seeds()["flower"])
)
any_body = st.binary(max_size=256) | messages | nested() | damaged_seeds


def _field(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


_METADATA = _field(1, _field(2, b"id") + _field(9, b"train"))
METADATA_ONLY = _METADATA  # neither content nor error: Flower raised MessageInitializationError
UNTYPED_VALUE = _METADATA + _field(  # a config value of no type: Flower's AttributeError
    2, _field(1, _field(1, b"c") + _field(4, _field(1, _field(1, b"k"))))
)


def test_valid_bodies_are_accepted() -> None:
    for data in seeds()["flower"]:
        assert accepted_or_refused(decode_flower, data)
        assert accepted_or_refused(decode_flower_payload, data)


@given(any_body)
@example(b"\xff")  # protobuf's DecodeError was not a FedboxError (issue 18)
@example(METADATA_ONLY)
@example(UNTYPED_VALUE)
def test_a_flower_body_is_decoded_or_refused(data: bytes) -> None:
    accepted_or_refused(decode_flower, data, constant=MIB)


@given(any_body)
@example(b"\xff")
@example(METADATA_ONLY)
@example(UNTYPED_VALUE)
def test_a_flower_payload_is_decoded_or_refused(data: bytes) -> None:
    accepted_or_refused(decode_flower_payload, data, constant=MIB)


def test_random_damage_to_real_flower_bodies() -> None:
    """A quick sweep without shrinking, from a fixed seed."""
    rng = random.Random(18)
    for _ in range(300):
        data = mutate(rng, rng.choice(seeds()["flower"]))
        accepted_or_refused(decode_flower, data, constant=MIB)
        accepted_or_refused(decode_flower_payload, data, constant=MIB)
