"""The parts table (``MAGIC | u32 count | entries | inline bytes``) over arbitrary bytes,
and containers with lying entries inside real message files, blobs beside them: accepted
or refused with a FedboxError; a table claiming terabytes allocates nothing for them."""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterator

import pytest
from bounded import MIB, accepted_or_refused
from hypothesis import given
from hypothesis import strategies as st

from fedbox.crypto import TAG_SIZE
from fedbox.rpc.parts import MAGIC
from fedbox.testing.parsers import (
    APP,
    ENDPOINT,
    MESSAGE_ID,
    READER,
    WRITER,
    MessageFolder,
    mutate,
    parse_table,
    seeds,
)
from fedbox.testing.requests import envelope_bytes, message_header

pytestmark = pytest.mark.timeout(240)

_ENTRY = struct.Struct("<B3sIQQ32s32s")
BLOB = b"a plain blob beside the message"
SEALED = bytes(range(64))  # a "sealed" blob: the right size for its entry, not ciphertext
u64 = st.sampled_from(
    [0, 1, 3, len(BLOB), len(SEALED), 2**31, 2**40, 2**63, 2**64 - 1]
) | st.integers(min_value=0, max_value=200)


@st.composite
def entries(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from([0, 0, 1, 2, 3, 255]))
    digest = draw(
        st.sampled_from([hashlib.sha256(BLOB).digest(), hashlib.sha256(SEALED).digest(), bytes(32)])
        | st.binary(min_size=32, max_size=32)
    )
    pad = draw(st.sampled_from([bytes(3), b"\x01\x02\x03"]))
    segment = draw(st.sampled_from([0, 1, 16, 64 << 10, 2**32 - 1]))
    length, stored = draw(u64), draw(u64)
    if draw(st.booleans()) and kind == 1:
        length = stored = len(BLOB)
    if draw(st.booleans()) and kind == 2:
        stored, length = len(SEALED), len(SEALED) - TAG_SIZE
    key = draw(st.binary(min_size=32, max_size=32))
    return _ENTRY.pack(kind, pad, segment, length, stored, digest, key)


@st.composite
def containers(draw: st.DrawFn) -> bytes:
    table = draw(st.lists(entries(), max_size=4))
    count = draw(
        st.sampled_from([len(table)] * 4 + [0, len(table) + 1, 2**20, 2**20 + 1, 2**32 - 1])
    )
    inline = draw(st.binary(max_size=64))
    data = MAGIC + struct.pack("<I", count) + b"".join(table) + inline
    if draw(st.booleans()):
        data = mutate(draw(st.randoms(use_true_random=False)), data)
    return data


damaged_seeds = st.builds(
    mutate, st.randoms(use_true_random=False), st.sampled_from(seeds()["table"])
)
any_table = (
    st.binary(max_size=512)
    | st.binary(max_size=256).map(MAGIC.__add__)
    | damaged_seeds
    | containers()
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MessageFolder]:
    box = MessageFolder(tmp_path_factory.mktemp("parts"))
    box.put_blob(BLOB)
    box.put_blob(SEALED)
    yield box
    box.close()


def _message(body: bytes) -> bytes:
    """A valid envelope around ``body`` (its digest right), so the table is reached."""
    header = message_header(WRITER, READER, APP, ENDPOINT, msg_id=MESSAGE_ID, created=1.0)
    return envelope_bytes(header, body)


def test_valid_tables_are_accepted(folder: MessageFolder) -> None:
    for data in seeds()["table"]:
        assert accepted_or_refused(parse_table, data)
    plain = _ENTRY.pack(
        1, bytes(3), 0, len(BLOB), len(BLOB), hashlib.sha256(BLOB).digest(), bytes(32)
    )
    body = (
        MAGIC
        + struct.pack("<I", 2)
        + plain
        + _ENTRY.pack(0, bytes(3), 0, 2, 0, bytes(32), bytes(32))
        + b"ok"
    )
    assert accepted_or_refused(folder.read, _message(body))


@given(any_table)
def test_a_parts_table_is_accepted_or_refused(data: bytes) -> None:
    accepted_or_refused(parse_table, data)


@given(any_table)
def test_a_container_in_a_message_file_is_accepted_or_refused(
    folder: MessageFolder, data: bytes
) -> None:
    accepted_or_refused(folder.read, _message(data), constant=MIB)


def test_random_damage_to_a_real_container(folder: MessageFolder) -> None:
    """A quick sweep without shrinking, from a fixed seed."""
    rng = random.Random(18)
    for _ in range(300):
        data = mutate(rng, rng.choice(seeds()["table"]))
        accepted_or_refused(folder.read, _message(data), constant=MIB)


@pytest.mark.parametrize("kind", [1, 2])
def test_a_table_claiming_a_terabyte_blob_allocates_nothing_for_it(
    folder: MessageFolder, kind: int
) -> None:
    entry = _ENTRY.pack(
        kind, bytes(3), 16, 2**40, 2**40 + 16, hashlib.sha256(BLOB).digest(), bytes(32)
    )
    body = MAGIC + struct.pack("<I", 1) + entry
    assert not accepted_or_refused(folder.read, _message(body), constant=64 * 1024)
