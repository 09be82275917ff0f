"""Encrypted request files, damaged: the ``enc`` header (algorithm, segment size, nonce,
wraps) given any JSON, lengths lied about, ciphertext flipped or cut, read by the
recipient's box with its keys: accepted, or refused with a FedboxError (DecryptError,
CorruptMessage), in memory bounded by the file."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from bounded import MIB, accepted_or_refused, json_values
from hypothesis import given
from hypothesis import strategies as st

import fedbox
from fedbox.datasite.paths import request_path
from fedbox.rpc.envelope import MAGIC
from fedbox.testing.parsers import APP, ENDPOINT, READER, WRITER, MessageFolder, mutate

pytestmark = pytest.mark.timeout(240)

ENC_FIELDS = ["alg", "v", "segment_size", "nonce_prefix", "wraps"]
WRAP_FIELDS = ["to", "prekey_id", "ephemeral", "wrapped"]


class Sealed:
    """READER's folder with WRITER's encrypted requests in it, and their bytes."""

    def __init__(self, root: Path) -> None:
        self.reader = fedbox.connect(root / "store", READER, state_dir=root / "b", fsync=False)
        writer = fedbox.connect(root / "store", WRITER, state_dir=root / "a", fsync=False)
        with writer:
            app = writer.app(APP)
            self.ids: list[str] = []
            self.files: list[bytes] = []
            for body in (b"", b"hello", bytes(range(256)) * 300):
                self.ids.append(app.send(READER, ENDPOINT, body).id)
                path = request_path(WRITER, READER, APP, ENDPOINT, self.ids[-1])
                self.files.append((root / "store" / path).read_bytes())
        self.folder = MessageFolder(root / "store", self.reader.sealer)

    def reader_of(self, index: int) -> Callable[[bytes], object]:
        """Reads bytes as the file of the ``index``-th request (its id is sealed in)."""
        return partial(self.folder.read, msg_id=self.ids[index])


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sealed]:
    made = Sealed(tmp_path_factory.mktemp("sealed"))
    yield made
    made.folder.close()
    made.reader.close()


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack("<I", data[4:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _join(header: dict[str, Any], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return MAGIC + struct.pack("<I", len(raw)) + raw + body


@st.composite
def damaged(draw: st.DrawFn, file: bytes) -> bytes:
    header, body = _split(file)
    enc = header["enc"]
    for name in draw(st.lists(st.sampled_from(ENC_FIELDS), max_size=2, unique=True)):
        if draw(st.booleans()):
            enc.pop(name)
        else:
            enc[name] = draw(json_values | st.sampled_from([0, 1, 2**31, 2**63, -1]))
    wraps = enc.get("wraps")
    if draw(st.booleans()) and isinstance(wraps, list) and wraps and isinstance(wraps[0], dict):
        wrap = wraps[0]
        name = draw(st.sampled_from(WRAP_FIELDS))
        wrap[name] = draw(json_values | st.sampled_from([READER, WRITER, "", "AAAA", "!!"]))
        if draw(st.booleans()):
            enc["wraps"].append(dict(wrap))  # the same reader twice
    if draw(st.booleans()):
        header["body_len"] = draw(st.sampled_from([0, 1, len(body) + 1, 2**40, 2**63 - 1]))
    data = _join(header, body)
    if draw(st.booleans()):
        data = mutate(draw(st.randoms(use_true_random=False)), data)
    return data


def test_valid_encrypted_requests_are_accepted(sealed: Sealed) -> None:
    for index, data in enumerate(sealed.files):
        assert accepted_or_refused(sealed.reader_of(index), data, constant=MIB)


@given(data=st.data())
def test_a_damaged_encrypted_request_is_accepted_or_refused(
    sealed: Sealed, data: st.DataObject
) -> None:
    index = data.draw(st.sampled_from(range(len(sealed.files))), "file")
    file = sealed.files[index]
    how = st.builds(mutate, st.randoms(use_true_random=False), st.just(file))
    damaged_file = data.draw(damaged(file) | how, "damaged")
    accepted_or_refused(sealed.reader_of(index), damaged_file, constant=MIB)
