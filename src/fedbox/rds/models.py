"""What rds reads and writes as JSON: dataset metadata, package manifests, job records.

Strict models (unknown keys refused) because these files cross trust boundaries: a
manifest comes from a scientist, a ``dataset.json`` from whoever could write the store.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fedbox.rds.states import JobState

__all__ = ["DatasetInfo", "FileInfo", "JobRecord", "Manifest"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileInfo(_Strict):
    """One file, by its POSIX path relative to its folder."""

    path: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class DatasetInfo(_Strict):
    """``dataset.json``: what a scientist learns about a dataset (the mock's files)."""

    name: str
    owner: str
    description: str
    files: list[FileInfo]
    created: float


class Manifest(_Strict):
    """A package's table of contents: every code file, the entry command, what it is for."""

    version: Literal[1] = 1
    name: str
    entry: str = Field(min_length=1)
    dataset: str
    kind: Literal["code", "fl"] = "code"
    files: list[FileInfo]

    def digest(self) -> str:
        """The package's identity for auto-approval: covers every file's sha256 and the
        entry command (the launcher), independent of tar metadata such as mtimes."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class JobRecord(_Strict):
    """A job as its owner keeps it. ``reason`` is the owner's words (rejection,
    withholding) or fedbox's classification of a run (``timeout after 5 s``), never the
    job's own output."""

    id: str
    owner: str
    submitter: str
    name: str
    dataset: str
    entry: str
    kind: str
    package_sha256: str
    status: JobState
    reason: str = ""
    created: float
    updated: float
