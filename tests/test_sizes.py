"""Sizes on the command line and in the environment."""

from __future__ import annotations

import pytest

from fedbox.rpc.parts import DEFAULT_CHUNK_SIZE, default_chunk_size, default_chunk_threshold
from fedbox.sizes import parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [("65536", 65536), ("64KiB", 65536), ("512 MiB", 512 << 20), ("1.5GB", 1_500_000_000)],
)
def test_sizes_in_bytes_and_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "12XB", "-1", "MiB", "1e9"])
def test_what_is_not_a_size_says_which_forms_are(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a size; use e\.g\. 65536, 64KiB"):
        parse_size(text)


def test_the_environment_gives_chunk_defaults_with_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDBOX_CHUNK_THRESHOLD", "1GiB")
    monkeypatch.delenv("FEDBOX_CHUNK_SIZE", raising=False)
    assert default_chunk_threshold() == 1 << 30
    assert default_chunk_size() == DEFAULT_CHUNK_SIZE
    assert default_chunk_threshold(4096) == 4096, "an explicit value wins"
    monkeypatch.setenv("FEDBOX_CHUNK_SIZE", "lots")
    with pytest.raises(ValueError, match=r"\$FEDBOX_CHUNK_SIZE: 'lots' is not a size"):
        default_chunk_size()
