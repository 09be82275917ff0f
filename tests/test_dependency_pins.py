"""fedbox's remote backends install beside flwr-datasets (issue 12, point 12).

flwr-datasets needs ``datasets<5``, and ``datasets`` 4.x caps fsspec (4.8: at
2026.2.0). s3fs pins its own fsspec release, and gcsfs needs at least its own, so a
fedbox whose extras allow newer ones gets a newer fsspec that installing
flwr-datasets then downgrades under them. These pins keep every extra at or below
the cap; raise ``DATASETS_FSSPEC_CEILING`` with the pins when datasets raises it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

DATASETS_FSSPEC_CEILING = Version("2026.2.0")
EXTRAS = ("remote", "gdrive", "hubscale", "test")
FSSPEC_FAMILY = ("fsspec", "s3fs", "gcsfs")
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def pinned() -> list[tuple[str, Requirement]]:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    found = [(extra, Requirement(line)) for extra in EXTRAS for line in extras[extra]]
    return [(extra, req) for extra, req in found if req.name in FSSPEC_FAMILY]


@pytest.mark.parametrize(("extra", "requirement"), pinned(), ids=lambda v: str(v))
def test_no_extra_allows_an_fsspec_that_datasets_would_downgrade(
    extra: str, requirement: Requirement
) -> None:
    ceiling = DATASETS_FSSPEC_CEILING
    newer = Version(f"{ceiling.major}.{ceiling.minor}.{ceiling.micro + 1}")
    assert not requirement.specifier.contains(newer), f"[{extra}] {requirement}"
    assert requirement.specifier.contains(DATASETS_FSSPEC_CEILING), f"[{extra}] {requirement}"


def test_every_fsspec_backend_of_the_extras_is_checked() -> None:
    names = {(extra, req.name) for extra, req in pinned()}
    assert {("remote", n) for n in FSSPEC_FAMILY} <= names
    assert {("test", n) for n in FSSPEC_FAMILY} <= names
