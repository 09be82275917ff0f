"""The envelope (``FBX1 | u32 header length | header JSON | body``) over arbitrary and
damaged files: read whole in memory, and read from a message file as a serving box
reads a request, accepted or refused with a FedboxError, memory bounded by the file."""

from __future__ import annotations

import hashlib
import json
import random
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from bounded import MIB, accepted_or_refused, json_values
from hypothesis import given
from hypothesis import strategies as st

from fedbox.rpc.envelope import MAGIC, MAX_HEADER_LEN
from fedbox.testing.parsers import (
    APP,
    ENDPOINT,
    MESSAGE_ID,
    READER,
    WRITER,
    MessageFolder,
    mutate,
    parse_envelope,
    seeds,
)

pytestmark = pytest.mark.timeout(240)

lengths = st.sampled_from(
    [0, 1, 5, 2**31, 2**32 - 1, 2**40, 2**63 - 1, 2**63, 2**64]
) | st.integers(min_value=-5, max_value=100)


def _fields(body: bytes) -> dict[str, Any]:
    return {
        "v": 1,
        "id": MESSAGE_ID,
        "kind": "request",
        "sender": WRITER,
        "recipient": READER,
        "app": APP,
        "endpoint": ENDPOINT,
        "created": 1.0,
        "expires": 2.0,
        "headers": {"k": "v"},
        "status": None,
        "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "enc": None,
    }


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """A message file, valid or not in one or more of its parts."""
    body = draw(st.binary(max_size=64))
    fields = _fields(body)
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        change = draw(st.sampled_from(["drop", "value", "length"]))
        if change == "drop":
            del fields[name]
        elif change == "value":
            fields[name] = draw(json_values)
        else:
            fields[name] = draw(lengths)
    if draw(st.booleans()):
        fields[draw(st.text(max_size=8))] = draw(json_values)
    depth = draw(st.sampled_from([0, 0, 0, 50, 1000, 100_000]))
    if depth:  # deep nesting where the schema allows anything: enc
        fields["enc"] = "@"
    raw = json.dumps(fields, allow_nan=True).encode()
    if depth:
        raw = raw.replace(
            b'"@"',
            b"[" * depth + b"]" * depth
            if draw(st.booleans())
            else b'{"a":' * depth + b"1" + b"}" * depth,
        )
    if draw(st.booleans()):
        raw = raw.decode().encode(draw(st.sampled_from(["utf-16", "latin-1", "utf-8"])), "replace")
    declared = draw(
        st.sampled_from(
            [len(raw)] * 4 + [0, len(raw) - 1, len(raw) + 1, 2**32 - 1, MAX_HEADER_LEN + 1]
        )
    )
    magic = draw(st.sampled_from([MAGIC] * 6 + [b"FBX2", b"\x00FBX", b""]))
    data = magic + struct.pack("<I", max(declared, 0)) + raw + body
    if draw(st.booleans()):
        data = mutate(draw(st.randoms(use_true_random=False)), data)
    return data


damaged_seeds = st.builds(
    mutate, st.randoms(use_true_random=False), st.sampled_from(seeds()["envelope"])
)
any_file = st.binary(max_size=512) | damaged_seeds | envelopes()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MessageFolder]:
    box = MessageFolder(tmp_path_factory.mktemp("envelope"))
    yield box
    box.close()


def test_valid_envelopes_are_accepted(folder: MessageFolder) -> None:
    for data in seeds()["envelope"]:
        assert accepted_or_refused(parse_envelope, data)
        assert accepted_or_refused(folder.read, data)


@given(any_file)
def test_an_envelope_read_in_memory_is_accepted_or_refused(data: bytes) -> None:
    accepted_or_refused(parse_envelope, data, constant=MIB)


@given(any_file)
def test_a_message_file_is_accepted_or_refused(folder: MessageFolder, data: bytes) -> None:
    accepted_or_refused(folder.read, data, constant=MIB)


def test_a_header_claiming_a_terabyte_body_allocates_nothing_for_it(
    folder: MessageFolder,
) -> None:
    fields = _fields(b"x")
    fields["body_len"] = 2**40
    raw = json.dumps(fields).encode()
    data = MAGIC + struct.pack("<I", len(raw)) + raw + b"x"
    assert not accepted_or_refused(parse_envelope, data, constant=64 * 1024)
    assert not accepted_or_refused(folder.read, data, constant=64 * 1024)


def test_random_damage_to_a_real_message(folder: MessageFolder) -> None:
    """A quick sweep without shrinking, from a fixed seed: many more cases than above."""
    rng = random.Random(18)
    for _ in range(300):
        data = mutate(rng, rng.choice(seeds()["envelope"]))
        accepted_or_refused(folder.read, data, constant=MIB)
