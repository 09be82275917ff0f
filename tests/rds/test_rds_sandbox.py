"""The sandbox: a clean environment, limits, and isolation where the machine allows it."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

import pytest

from fedbox.rds.sandbox import (
    Limits,
    RunResult,
    available_isolations,
    isolation_available,
    run_sandboxed,
)

ISOLATION = isolation_available()
NETWORK_ISOLATIONS = [i for i in available_isolations() if i != "none"]
needs_fs_isolation = pytest.mark.skipif(
    ISOLATION != "bubblewrap", reason="needs bubblewrap (a mount namespace)"
)
MINUTE = Limits(timeout=60)


@pytest.fixture
def job(tmp_path: Path):  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("1,2,3\n")

    def run(
        script: str, limits: Limits = MINUTE, isolation: str | None = None
    ) -> tuple[RunResult, Path]:
        code = tmp_path / "code"
        code.mkdir(exist_ok=True)
        (code / "main.py").write_text(textwrap.dedent(script))
        result = run_sandboxed(
            "python main.py",
            code=code,
            data=data,
            output=tmp_path / "output",
            logs=tmp_path / "logs",
            job_id="job-1",
            limits=limits,
            isolation=isolation,  # type: ignore[arg-type]
        )
        return result, tmp_path

    return run


@pytest.mark.parametrize("isolation", available_isolations())
def test_environment_is_clean_and_says_where_things_are(
    job, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.setenv("OWNER_SECRET_TOKEN", "s3cr3t")
    result, tmp = job(
        """
        import json, os, pathlib
        out = pathlib.Path(os.environ["OUTPUT_DIR"])
        rows = (pathlib.Path(os.environ["DATA_DIR"]) / "rows.csv").read_text()
        (out / "env.json").write_text(json.dumps({"env": dict(os.environ), "rows": rows}))
        """,
        isolation=isolation,
    )
    assert result.ok, (tmp / "logs" / "stderr.txt").read_text()
    seen = json.loads((tmp / "output" / "env.json").read_text())
    assert seen["rows"] == "1,2,3\n"
    assert seen["env"]["FEDBOX_JOB_ID"] == "job-1"
    assert "OWNER_SECRET_TOKEN" not in seen["env"]
    assert "FEDBOX_HOME" not in seen["env"]
    assert f"isolation: {isolation}" in (tmp / "logs" / "stderr.txt").read_text()
    assert json.loads((tmp / "logs" / "run.json").read_text())["isolation"] == isolation


def test_timeout_is_reported_as_such(job) -> None:
    result, _ = job("while True:\n    pass\n", Limits(timeout=1, cpu_seconds=600))
    assert result.outcome == "timeout" and "timeout" in result.reason


def test_memory_limit_is_reported_as_such(job) -> None:
    result, _ = job(
        "blob = bytearray(2 * 1024**3)\n", Limits(timeout=60, memory_bytes=512 * 1024**2)
    )
    assert result.outcome == "memory-limit", result


def test_file_size_limit_is_reported_as_such(job) -> None:
    script = """
    import os
    with open(os.path.join(os.environ["OUTPUT_DIR"], "big"), "wb") as f:
        f.write(b"x" * 10_000_000)
    """
    result, _ = job(script, Limits(timeout=60, file_size_bytes=1_000_000))
    assert result.outcome == "file-size-limit", result


def test_a_crash_is_reported_with_its_exit_code_not_its_output(job) -> None:
    result, tmp = job("import sys\nprint('MARKER-42', file=sys.stderr)\nsys.exit(3)\n")
    assert result.outcome == "exit" and result.reason == "crashed: exit code 3"
    assert "MARKER-42" in (tmp / "logs" / "stderr.txt").read_text()


@needs_fs_isolation
def test_writes_outside_output_and_into_data_are_stopped(job, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    script = f"""
    import os, pathlib
    results = {{}}
    for target in ({str(outside)!r}, os.path.join(os.environ["DATA_DIR"], "x"), "/usr/x"):
        try:
            pathlib.Path(target).write_text("pwned")
            results[target] = "written"
        except OSError as exc:
            results[target] = type(exc).__name__
    pathlib.Path(os.environ["OUTPUT_DIR"], "r.txt").write_text(repr(results))
    """
    result, tmp = job(script)
    assert result.ok, (tmp / "logs" / "stderr.txt").read_text()
    assert "written" not in (tmp / "output" / "r.txt").read_text()
    assert not outside.exists() and not (tmp / "data" / "x").exists()


@needs_fs_isolation
def test_another_dataset_and_the_owner_state_are_invisible(
    job, tmp_path: Path, fedbox_home: Path
) -> None:
    other = tmp_path / "other-dataset"
    other.mkdir()
    (other / "secret.csv").write_text("other owner's rows\n")
    fedbox_home.mkdir(parents=True, exist_ok=True)
    (fedbox_home / "key").write_text("private key\n")
    script = f"""
    import os, pathlib
    seen = [os.path.exists({str(other / "secret.csv")!r}), os.path.exists({str(fedbox_home)!r})]
    pathlib.Path(os.environ["OUTPUT_DIR"], "r.txt").write_text(repr(seen))
    """
    result, tmp = job(script)
    assert result.ok, (tmp / "logs" / "stderr.txt").read_text()
    assert (tmp / "output" / "r.txt").read_text() == "[False, False]"


@pytest.mark.parametrize("isolation", NETWORK_ISOLATIONS)
def test_a_network_connection_attempt_fails(job, isolation: str) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        script = f"""
        import os, pathlib, socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
            outcome = "connected"
        except OSError as exc:
            outcome = type(exc).__name__
        pathlib.Path(os.environ["OUTPUT_DIR"], "r.txt").write_text(outcome)
        """
        result, tmp = job(script, MINUTE, isolation)
    assert result.ok, (tmp / "logs" / "stderr.txt").read_text()
    assert (tmp / "output" / "r.txt").read_text() != "connected"
