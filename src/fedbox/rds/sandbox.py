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

import contextlib
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
from typing import IO, Literal

__all__ = [
    "STATE_DIR_ENV",
    "JobPaths",
    "Limits",
    "RunResult",
    "SandboxedProcess",
    "available_isolations",
    "isolation_available",
    "run_sandboxed",
    "spawn_sandboxed",
]

Isolation = Literal["bubblewrap", "unshare", "none"]

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc")
SANDBOX_DATA = "/job/data"
SANDBOX_OUTPUT = "/job/output"
SANDBOX_CODE = "/job/code"
SANDBOX_STATE = "/job/state"
STATE_DIR_ENV = "FEDBOX_JOB_STATE"
"""Where a job finds its :attr:`JobPaths.state` folder, when it has one."""


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


def _bwrap_prefix(paths: JobPaths, venv: Path | None) -> list[str]:
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
    fedbox_source = str(Path(__file__).resolve().parents[2])
    argv += ["--ro-bind", fedbox_source, fedbox_source]  # fedbox itself (an FL client's)
    argv += ["--ro-bind", str(paths.code), SANDBOX_CODE]
    argv += ["--ro-bind", str(paths.data), SANDBOX_DATA]
    argv += ["--bind", str(paths.output), SANDBOX_OUTPUT]
    if paths.state is not None:
        argv += ["--bind", str(paths.state), SANDBOX_STATE]
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


@dataclass(frozen=True, slots=True)
class JobPaths:
    """The folders a run sees: ``code`` (read-only), ``data`` (read-only), ``output``,
    ``logs`` (outside the sandbox: stdout/stderr land there), and optionally ``state``:
    a writable folder of the job's own that survives between its messages (an FL
    client's Contexts), mounted at ``/job/state`` under bubblewrap."""

    code: Path
    data: Path
    output: Path
    logs: Path
    state: Path | None = None


def _prepare(
    entry: str,
    paths: JobPaths,
    job_id: str,
    isolation: Isolation,
    venv: Path | None,
    extra_env: dict[str, str],
) -> tuple[list[str], dict[str, str]]:
    """The command line and the clean environment of a run."""
    paths.output.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    if paths.state is not None:
        paths.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = _command(entry, venv)
    if isolation == "bubblewrap":
        env = {"DATA_DIR": SANDBOX_DATA, "OUTPUT_DIR": SANDBOX_OUTPUT, "HOME": "/tmp"}
        if paths.state is not None:
            env[STATE_DIR_ENV] = SANDBOX_STATE
        argv = [*_bwrap_prefix(paths, venv), *argv]
    else:
        env = {"DATA_DIR": str(paths.data), "OUTPUT_DIR": str(paths.output)}
        env["HOME"] = str(paths.output)
        if paths.state is not None:
            env[STATE_DIR_ENV] = str(paths.state)
        if isolation == "unshare":
            argv = [shutil.which("unshare") or "unshare", "--net", "--map-root-user", "--", *argv]
    env |= {"FEDBOX_JOB_ID": job_id, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **extra_env}
    return argv, env


class SandboxedProcess:
    """A started run. :meth:`finish` waits for it (killing it at the wall-clock
    timeout), classifies how it ended and records that in ``logs/run.json``."""

    def __init__(
        self, proc: subprocess.Popen[bytes], paths: JobPaths, limits: Limits, isolation: str
    ) -> None:
        self.proc = proc
        self.paths = paths
        self.limits = limits
        self.isolation = isolation
        self._started = time.monotonic()

    def kill(self) -> None:
        """End the run and everything it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def finish(self) -> RunResult:
        left = self.limits.timeout - (time.monotonic() - self._started)
        timed_out = False
        try:
            self.proc.wait(timeout=max(left, 0))
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill()
            self.proc.wait()
        seconds = time.monotonic() - self._started
        with (self.paths.logs / "stderr.txt").open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            tail = f.read()
        code = self.proc.returncode
        outcome, reason = _classify(code, timed_out, tail, self.limits, self.isolation)
        result = RunResult(outcome, code, reason, self.isolation, round(seconds, 3))
        (self.paths.logs / "run.json").write_text(json.dumps(asdict(result), indent=2))
        return result


def spawn_sandboxed(
    entry: str,
    paths: JobPaths,
    *,
    job_id: str,
    limits: Limits = Limits(),
    isolation: Isolation | None = None,
    venv: Path | None = None,
    pipes: bool = False,
    extra_env: dict[str, str] | None = None,
) -> SandboxedProcess:
    """Start ``entry`` sandboxed (see :func:`run_sandboxed`). With ``pipes`` its stdin and
    stdout are pipes to the caller (a job that talks only through them, such as an FL
    client fed messages by the daemon); else stdin is empty and stdout goes to
    ``logs/stdout.txt``. Stderr always goes to ``logs/stderr.txt``."""
    isolation = isolation or isolation_available()
    argv, env = _prepare(entry, paths, job_id, isolation, venv, extra_env or {})
    with (paths.logs / "stderr.txt").open("wb") as err:
        err.write(f"[fedbox] isolation: {isolation}\n".encode())
        err.flush()
        with contextlib.ExitStack() as files:
            out: int | IO[bytes] = subprocess.PIPE
            if not pipes:
                out = files.enter_context((paths.logs / "stdout.txt").open("wb"))
            proc = subprocess.Popen(
                argv,
                cwd=paths.code,
                env=env,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=lambda: _limit(limits),
            )
    return SandboxedProcess(proc, paths, limits, isolation)


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
    paths = JobPaths(code=code, data=data, output=output, logs=logs)
    return spawn_sandboxed(
        entry, paths, job_id=job_id, limits=limits, isolation=isolation, venv=venv
    ).finish()
