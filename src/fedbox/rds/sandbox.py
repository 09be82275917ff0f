"""Running a job's code: clean environment, limits, and the strongest isolation the
machine offers.

Isolation, strongest first (the run log says which was used):

- ``bubblewrap``: new user, PID, IPC and network namespaces; a filesystem of only the
  system folders (read-only), the interpreter, the code (read-only), the data
  (read-only) and the output folder; a private ``/tmp``.
- ``unshare``: a new network namespace only (no network); the filesystem is shared.
- ``none``: limits and a clean environment only.

Every run gets rlimits on CPU seconds, address space and file size, and a wall-clock
timeout after which its whole process group is killed.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "Limits",
    "RunResult",
    "available_isolations",
    "isolation_available",
    "run_sandboxed",
]

Isolation = Literal["bubblewrap", "unshare", "none"]

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc")
SANDBOX_DATA = "/job/data"
SANDBOX_OUTPUT = "/job/output"
SANDBOX_CODE = "/job/code"


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float = 3600.0
    """Wall-clock seconds."""
    cpu_seconds: int = 3600
    memory_bytes: int = 4 * 1024**3
    file_size_bytes: int = 1024**3


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended. ``outcome`` is one of ``finished``, ``exit``, ``timeout``,
    ``cpu-limit``, ``memory-limit``, ``file-size-limit``, ``killed``; ``reason`` says it
    in words without quoting the job's output."""

    outcome: str
    returncode: int | None
    reason: str
    isolation: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.outcome == "finished"


def _works(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def available_isolations() -> list[Isolation]:
    """The isolations that actually start a process here, strongest first (tried, not
    assumed: user namespaces may be disabled); ``none`` always works."""
    found: list[Isolation] = []
    bwrap = shutil.which("bwrap")
    if bwrap and _works([bwrap, "--unshare-all", "--ro-bind", "/", "/", "true"]):
        found.append("bubblewrap")
    unshare = shutil.which("unshare")
    if unshare and _works([unshare, "--net", "--map-root-user", "true"]):
        found.append("unshare")
    return [*found, "none"]


def isolation_available() -> Isolation:
    """The strongest isolation that works here."""
    return available_isolations()[0]


def _command(entry: str, venv: Path | None) -> list[str]:
    """The entry as argv; a leading ``python`` is the interpreter fedbox runs on, or the
    job's own venv's."""
    argv = shlex.split(entry)
    if not argv:
        raise ValueError("empty entry command")
    if argv[0] in ("python", "python3"):
        argv[0] = str(venv / "bin" / "python") if venv is not None else sys.executable
    return argv


def _bwrap_prefix(code: Path, data: Path, output: Path, venv: Path | None) -> list[str]:
    argv = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent"]
    argv += ["--new-session", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for system in _SYSTEM_DIRS:
        if Path(system).exists():
            argv += ["--ro-bind", system, system]
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        argv += ["--ro-bind", prefix, prefix]
    interpreter = Path(sys.executable)
    argv += ["--ro-bind", str(interpreter.parent), str(interpreter.parent)]
    if venv is not None:
        argv += ["--ro-bind", str(venv), str(venv)]
    argv += ["--ro-bind", str(code), SANDBOX_CODE]
    argv += ["--ro-bind", str(data), SANDBOX_DATA]
    argv += ["--bind", str(output), SANDBOX_OUTPUT]
    argv += ["--chdir", SANDBOX_CODE, "--"]
    return argv


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the run is killed when the process that started it dies (kill -9 included),
    so no job outlives its runner unseen; bubblewrap passes this on to the job."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _limit(limits: Limits) -> None:
    """In the child before exec: the limits it and everything it starts inherit."""
    _die_with_parent()
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _classify(
    code: int | None, timed_out: bool, stderr_tail: bytes, limits: Limits, isolation: str
) -> tuple[str, str]:
    if timed_out:
        return "timeout", f"timeout: stopped after {limits.timeout:g} s wall-clock"
    if code == 0:
        return "finished", "finished"
    if code is not None and isolation == "bubblewrap" and code > 128:
        code = 128 - code  # bwrap exits 128+N when its child dies of signal N
    if code is not None and code < 0:
        sig = -code
        if sig == signal.SIGXCPU:
            return "cpu-limit", f"CPU limit hit ({limits.cpu_seconds} s)"
        if sig == signal.SIGXFSZ:
            return "file-size-limit", f"file size limit hit ({limits.file_size_bytes:,} bytes)"
        return "killed", f"killed by signal {signal.Signals(sig).name}"
    if b"MemoryError" in stderr_tail or b"Cannot allocate memory" in stderr_tail:
        return "memory-limit", f"memory limit hit ({limits.memory_bytes:,} bytes)"
    if b"File too large" in stderr_tail:
        return "file-size-limit", f"file size limit hit ({limits.file_size_bytes:,} bytes)"
    return "exit", f"crashed: exit code {code}"


def run_sandboxed(
    entry: str,
    *,
    code: Path,
    data: Path,
    output: Path,
    logs: Path,
    job_id: str,
    limits: Limits = Limits(),
    isolation: Isolation | None = None,
    venv: Path | None = None,
) -> RunResult:
    """Run ``entry`` in ``code`` with ``DATA_DIR`` = ``data`` (read-only where the
    isolation allows), ``OUTPUT_DIR`` = ``output``, ``FEDBOX_JOB_ID``; stdout and stderr
    go to ``logs/`` (never anywhere else), and ``logs/run.json`` records the result.
    ``venv``: the job's own environment (its ``python`` runs the entry)."""
    isolation = isolation or isolation_available()
    output.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    argv = _command(entry, venv)
    if isolation == "bubblewrap":
        env = {"DATA_DIR": SANDBOX_DATA, "OUTPUT_DIR": SANDBOX_OUTPUT, "HOME": "/tmp"}
        argv = [*_bwrap_prefix(code, data, output, venv), *argv]
        cwd = code
    else:
        env = {"DATA_DIR": str(data), "OUTPUT_DIR": str(output), "HOME": str(output)}
        if isolation == "unshare":
            argv = [shutil.which("unshare") or "unshare", "--net", "--map-root-user", "--", *argv]
        cwd = code
    env |= {"FEDBOX_JOB_ID": job_id, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    start = time.monotonic()
    timed_out = False
    with (logs / "stdout.txt").open("wb") as out, (logs / "stderr.txt").open("wb") as err:
        err.write(f"[fedbox] isolation: {isolation}\n".encode())
        err.flush()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=lambda: _limit(limits),
        )
        try:
            proc.wait(timeout=limits.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    seconds = time.monotonic() - start
    with (logs / "stderr.txt").open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
        tail = f.read()
    outcome, reason = _classify(proc.returncode, timed_out, tail, limits, isolation)
    result = RunResult(outcome, proc.returncode, reason, isolation, round(seconds, 3))
    (logs / "run.json").write_text(json.dumps(asdict(result), indent=2))
    return result
