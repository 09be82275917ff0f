"""fedbox.testing.payload: large bodies made on the fly."""

from __future__ import annotations

import pytest

from fedbox.testing.payload import repeated_block


def test_the_block_repeats_up_to_the_size_in_block_sized_pieces() -> None:
    pieces = list(repeated_block(b"abcd", 10))
    assert pieces == [b"abcd", b"abcd", b"ab"]


def test_no_size_gives_nothing() -> None:
    assert list(repeated_block(b"abcd", 0)) == []


def test_an_empty_block_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        next(repeated_block(b"", 10))
