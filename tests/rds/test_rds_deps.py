"""``job run --with-deps``: the job's requirements.txt in a venv of its own, owner's choice."""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedbox.datasite.workspace import Workspace
from fedbox.rds import JobState
from fedbox.rds.datasets import create_dataset
from fedbox.rds.owner import Owner, RunRefused
from fedbox.rds.package import pack
from fedbox.store import open_store

OWNER = "owner@x.org"


def _wheel(path: Path) -> None:
    """A one-module wheel, built by hand so that installing it needs no network."""
    files = {
        "tinydep/__init__.py": "VALUE = 'from the job venv'\n",
        "tinydep-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n",
        "tinydep-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + "tinydep-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in {**files, "tinydep-1.0.dist-info/RECORD": record}.items():
            whl.writestr(name, text)


@pytest.fixture
def owner(root: Path, tmp_path: Path) -> Iterator[Owner]:
    for name in ("private", "mock"):
        (tmp_path / name).mkdir()
    ws = Workspace.for_email(OWNER).ensure()
    with open_store(root) as store:
        create_dataset(store, ws, "d", private=tmp_path / "private", mock=tmp_path / "mock")
    with Owner(ws) as owner:
        yield owner


def _approved_job(owner: Owner, code: Path, job_id: str) -> str:
    data, _ = pack(code, entry="python main.py", dataset="d")
    owner.receive(job_id, "sci@x.org", data)
    owner.approve(job_id)
    return job_id


def test_with_deps_installs_the_requirements_into_the_jobs_own_venv(
    owner: Owner, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    (code / "wheels").mkdir(parents=True)
    _wheel(code / "wheels" / "tinydep-1.0-py3-none-any.whl")
    (code / "requirements.txt").write_text("./wheels/tinydep-1.0-py3-none-any.whl\n")
    (code / "main.py").write_text(
        "import os, pathlib, tinydep\n"
        "pathlib.Path(os.environ['OUTPUT_DIR'], 'v.txt').write_text(tinydep.VALUE)\n"
    )
    job_id = _approved_job(owner, code, "00000000-0000-4000-8000-00000000000a")
    assert owner.requirements(job_id) == ["./wheels/tinydep-1.0-py3-none-any.whl"]
    job, result = owner.run(job_id, with_deps=True)
    assert result.ok and job.status is JobState.FINISHED
    folder = owner.job_folder(job_id)
    assert (folder / "output" / "v.txt").read_text() == "from the job venv"
    assert importlib.util.find_spec("tinydep") is None  # not in the owner's environment


def test_with_deps_without_requirements_is_refused_and_changes_nothing(
    owner: Owner, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "main.py").write_text("print(1)\n")
    job_id = _approved_job(owner, code, "00000000-0000-4000-8000-00000000000b")
    assert owner.requirements(job_id) == []
    with pytest.raises(RunRefused, match=r"no requirements\.txt"):
        owner.run(job_id, with_deps=True)
    assert owner.jobs.get(job_id).status is JobState.APPROVED
