"""``fedbox runs list/show/export`` on the record of a real run: a model taken out of a
crashed run, then out of the same run resumed to its end, equals the arrays the
ServerApp held after that round (which the app saves itself, ``round-N.npy``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from chaos_run import AGG, Deployment

SAFETENSORS_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def _fedbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedbox", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A safetensors file read by its published layout (no extra package needed)."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    metadata = header.pop("__metadata__", {})
    body = data[8 + size :]
    arrays = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        dtype = np.dtype(SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<")
        arrays[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(info["shape"])
    return arrays, metadata


def _export(dep: Deployment, run: str, round: str, out: Path) -> np.ndarray:
    done = _fedbox("runs", "export", run, "--round", round, "--out", str(out),
                   "--state-dir", str(dep.state(AGG)))  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    if out.suffix == ".npz":
        with np.load(out) as npz:
            assert list(npz) == ["arrays.0"]
            return npz["arrays.0"]
    arrays, metadata = _read_safetensors(out)
    assert metadata == {"run": run, "round": round, "app": "fbresume"}
    assert list(arrays) == ["arrays.0"]
    return arrays["arrays.0"]


def test_runs_of_a_crashed_then_resumed_run(tmp_path: Path) -> None:
    dep = Deployment(tmp_path / "run", env={"FBRESUME_EVALUATE_PAUSE": "2"})
    try:
        dep.start_all()
        dep.wait_until(
            lambda h: any(r.round == "2" and r.sent == 4 and r.pending == 2 for r in h.rounds)
        )
        dep.kill(AGG)
        history = dep.history()
        assert history is not None
        run = history.summary.name
        state = str(dep.state(AGG))

        listed = _fedbox("runs", "list", "--state-dir", state)
        assert listed.returncode == 0, listed.stderr
        assert run in listed.stdout and "interrupted" in listed.stdout

        for round in ("1", "2"):  # a model out of a crashed run
            held = np.load(dep.output / f"round-{round}.npy")
            for suffix in (".safetensors", ".npz"):
                exported = _export(dep, run, round, tmp_path / f"r{round}{suffix}")
                assert exported.dtype == held.dtype
                np.testing.assert_array_equal(exported, held)
        missing = _fedbox("runs", "export", run, "--round", "3", "--out",
                          str(tmp_path / "r3.npz"), "--state-dir", state)  # fmt: skip
        assert missing.returncode == 1
        assert f"run {run} recorded no arrays sent in round 3" in missing.stderr

        dep.start(AGG)
        assert dep.finish() == 0, dep.logs(AGG)
        final = _export(dep, run, "3", tmp_path / "final.safetensors")
        np.testing.assert_array_equal(final, dep.final())

        shown = _fedbox("runs", "show", run, "--state-dir", state)
        assert shown.returncode == 0, shown.stderr
        out = shown.stdout
        assert f"run {run}: fbresume, finished, 3 rounds" in out and "resumed  1 times" in out
        assert out.count("site0@a.org") == 3 and out.count("site1@b.org") == 3, out
        assert "evaluate.loss=" in out and "train.num-examples=3" in out, out
    finally:
        dep.close()


def test_runs_commands_say_what_is_missing(tmp_path: Path) -> None:
    shown = _fedbox("runs", "show", "nope", "--state-dir", str(tmp_path))
    assert shown.returncode == 1 and "error: no run named nope in" in shown.stderr
    listed = _fedbox("runs", "list", "--state-dir", str(tmp_path))
    assert listed.returncode == 0 and "no runs recorded" in listed.stdout
    bad = _fedbox("runs", "export", "nope", "--out", str(tmp_path / "x.pt"),
                  "--state-dir", str(tmp_path))  # fmt: skip
    assert bad.returncode == 1 and "no run named nope" in bad.stderr
