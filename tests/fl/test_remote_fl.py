"""``fedbox simulate``, ``cleanup`` and ``keys`` over remote stores, as real processes.

The servers run in this process (see remote_servers.py); each ``fedbox`` command and
every client it starts is a process of its own that reaches them over 127.0.0.1.
Storage options travel the three ways a user can give them: S3's in
``$FEDBOX_STORAGE_OPTIONS``, WebDAV's as ``--storage-option`` flags, SFTP's in the app's
``[tool.fedbox.storage_options]``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from remote_servers import Target

import fedbox
from fedbox.cli.roots import parse_storage_options
from fedbox.cli.simulate_cmd import client_command, client_env
from fedbox.fl.config import load_app_config
from fedbox.fl.simulate import plan_simulation
from fedbox.rpc.envelope import read_header
from fedbox.store import ENV_STORAGE_OPTIONS
from fedbox.store.registry import resolve_storage_options

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples" / "digits"
ROUNDS = 2
SHORT_RUN = ("--clients", "2", "--run-config", f"num-server-rounds={ROUNDS}")


def fedbox_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fedbox", *args]


def _env(**extra: str) -> dict[str, str]:
    """This process's environment (FEDBOX_HOME is per test), wide, options only from ``extra``."""
    env = {**os.environ, "COLUMNS": "300"}
    env.pop(ENV_STORAGE_OPTIONS, None)
    return {**env, **extra}


def run_fedbox(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fedbox_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env or _env()
    )


def _flags(options: dict[str, object]) -> list[str]:
    """``--storage-option KEY=VALUE`` for each option, values as JSON."""
    out: list[str] = []
    for key, value in options.items():
        out += ["--storage-option", f"{key}={json.dumps(value)}"]
    return out


def _s3_env(target: Target) -> dict[str, str]:
    return _env(**{ENV_STORAGE_OPTIONS: json.dumps({"s3": target.options})})


def _check_run(result: subprocess.CompletedProcess[str], rounds: int = ROUNDS) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "(encryption off)" not in out
    accuracy = float(re.search(r"final test accuracy ([0-9.]+)", out).group(1))
    assert accuracy >= 0.85, out
    assert "ServerApp finished" in out
    for i in range(2):  # every message answered once, every client stopped and exited 0
        replies = 2 * rounds
        assert re.search(
            rf"client-{i}@sim\.fedbox\s+│ yes\s+│ {replies}/{replies} .*│ yes\s+│ 0\s+│", out
        ), out
    assert "did not answer" not in out and "Traceback" not in out
    return out


# -- options ---------------------------------------------------------------------------


def test_storage_option_flags_parse_json_else_strings() -> None:
    parsed = parse_storage_options(
        ["timeout=30", 'auth=["u", "p w"]', "endpoint_url=http://127.0.0.1:9000/x", "e=", "f=a=b"]
    )
    assert parsed == {
        "timeout": 30,
        "auth": ["u", "p w"],
        "endpoint_url": "http://127.0.0.1:9000/x",
        "e": "",
        "f": "a=b",
    }
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        parse_storage_options(["no-equals-sign"])


def test_flags_beat_the_environment_which_beats_the_project(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_STORAGE_OPTIONS, json.dumps({"s3": {"b": "env", "c": "env"}}))
    config = {"a": "project", "s3": {"b": "project"}, "sftp": {"x": 1}}
    assert resolve_storage_options("s3://bucket/p", config, {"c": "flag"}) == {
        "a": "project",
        "b": "env",
        "c": "flag",
    }
    # a local --root overriding a project's URL root ignores the project's options...
    assert resolve_storage_options("/tmp/folder", config) == {}
    # ...but options given on the command line for a folder are a mistake
    with pytest.raises(ValueError, match="apply to URL roots"):
        resolve_storage_options("/tmp/folder", None, {"key": "k"})


def test_client_processes_get_secrets_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_STORAGE_OPTIONS, raising=False)
    url = "webdav://alice:pw-in-url@127.0.0.1:1/fed"
    plan = plan_simulation(
        load_app_config(DIGITS),
        {},
        clients=2,
        root=url,
        storage_options={"auth": ["alice", "top-secret"]},
        poll_interval=0.1,
    )
    cmd = " ".join(client_command(plan, 0, plan.datasites[0]))
    assert "top-secret" not in cmd and "pw-in-url" not in cmd
    assert "--poll-interval 0.1" in cmd
    env = client_env(plan)
    assert json.loads(env[ENV_STORAGE_OPTIONS]) == {"webdav": {"auth": ["alice", "top-secret"]}}
    assert env["FEDBOX_ROOT"] == url
    plain = plan_simulation(load_app_config(DIGITS), {}, root="webdav://127.0.0.1:1/fed")
    assert "webdav://127.0.0.1:1/fed" in client_command(plain, 0, plain.datasites[0])


# -- full runs ---------------------------------------------------------------------------


def test_simulate_digits_over_s3_options_from_the_environment(
    make_target: Callable[[str], Target],
) -> None:
    target = make_target("s3")
    out = _check_run(
        run_fedbox("simulate", str(DIGITS), *SHORT_RUN, "--root", target.url, env=_s3_env(target))
    )
    assert f"store  {target.url}" in out


def test_simulate_digits_over_webdav_options_from_flags(
    make_target: Callable[[str], Target],
) -> None:
    target = make_target("webdav")
    result = run_fedbox(
        "simulate", str(DIGITS), *SHORT_RUN, "--root", target.url, *_flags(target.options)
    )
    _check_run(result)
    # the messages went through the server's folder, end-to-end encrypted
    prefix = target.url.rsplit("/", 1)[1]
    requests = sorted((target.server.root / prefix).glob("syft_outbox_inbox_*/*/rpc/*/*.request"))
    assert len(requests) == 2 * (2 * ROUNDS + 2)  # per client: join, train + evaluate, stop
    with open(requests[0], "rb") as f:
        assert read_header(f).enc is not None


def test_simulate_digits_over_sftp_options_from_the_project(
    make_target: Callable[[str], Target], tmp_path: Path
) -> None:
    target = make_target("sftp")
    app = Path(shutil.copytree(DIGITS, tmp_path / "digits"))
    section = "\n".join(f"{k} = {json.dumps(v)}" for k, v in target.options.items())
    with open(app / "pyproject.toml", "a") as f:
        f.write(f"\n[tool.fedbox.storage_options.sftp]\n{section}\n")
    assert load_app_config(app).federation.storage_options == {"sftp": target.options}
    _check_run(run_fedbox("simulate", str(app), *SHORT_RUN, "--root", target.url))


def test_a_run_survives_the_store_going_down_and_coming_back(
    make_target: Callable[[str], Target], tmp_path: Path
) -> None:
    target = make_target("webdav")
    rounds = 4
    folder = target.server.root / target.url.rsplit("/", 1)[1]
    log = tmp_path / "simulate.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            fedbox_cmd(
                "simulate",
                str(DIGITS),
                "--clients",
                "2",
                "--run-config",
                f"num-server-rounds={rounds}",
                "--root",
                target.url,
                *_flags(target.options),
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
    try:
        replies = "syft_outbox_inbox_client-*_to_aggregator@sim.fedbox/*/rpc/messages/*.response"
        deadline = time.monotonic() + 90
        while not list(folder.glob(replies)):  # the first replies (joins, then round 1)
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        target.server.stop()
        seen_at_stop = len(list(folder.glob(replies)))
        assert proc.poll() is None, "the run ended before the outage"
        time.sleep(2.5)
        target.server.start()
        code = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = subprocess.CompletedProcess(proc.args, code, log.read_text(), "")
    _check_run(result, rounds)
    assert seen_at_stop < len(list(folder.glob(replies))) == 2 * (2 * rounds + 2)


def test_wrong_password_is_one_clear_line_and_a_failure(
    make_target: Callable[[str], Target],
) -> None:
    target = make_target("webdav")
    started = time.monotonic()
    result = run_fedbox(
        "simulate", str(DIGITS), *SHORT_RUN, "--root", target.url, *_flags(target.bad_options)
    )
    assert time.monotonic() - started < 30  # refused at once, not retried
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: ") and "refused access" in errors[0]
    assert "Check the credentials" in errors[0] and "401" in errors[0]
    assert "wrong password" not in result.stdout + result.stderr


# -- cleanup and keys ----------------------------------------------------------------------


def test_keys_init_and_show_over_a_url(make_target: Callable[[str], Target]) -> None:
    target = make_target("s3")
    env = _s3_env(target)
    for email in ("a@x.org", "b@x.org"):
        out = run_fedbox("keys", "init", "--root", target.url, "--email", email, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"created keys for {email}" in out.stdout
        assert f"published at datasites/{email}/public/did.json" in out.stdout
    assert target.make().exists("datasites/b@x.org/public/did.json")
    show = run_fedbox(
        "keys", "show", "b@x.org", "--root", target.url, "--email", "a@x.org", env=env
    )
    assert show.returncode == 0 and "not pinned yet" in show.stdout, show.stdout + show.stderr
    bad = run_fedbox(
        "keys",
        "init",
        "--root",
        target.url,
        "--email",
        "a@x.org",
        *_flags({"secret": "nope"}),
        env=env,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stdout + bad.stderr
    assert "refused access" in bad.stdout


def test_cleanup_over_a_url(make_target: Callable[[str], Target]) -> None:
    target = make_target("s3")
    a = fedbox.connect(target.url, "a@x.org", storage_options=target.options)
    b = fedbox.connect(target.url, "b@x.org", storage_options=target.options)
    try:
        b.app("t").on_request("echo")(lambda req: req.body)
        b.app("t").start()
        assert a.app("t").send("b@x.org", "echo", b"hello").wait(30).status == 200
    finally:
        for box in (a, b):
            box.close()
            box.store.close()
    env = _s3_env(target)
    args = ("cleanup", "--root", target.url, "--email", "a@x.org", "--older-than")
    keep = run_fedbox(*args, "1d", env=env)
    assert keep.returncode == 0 and "removed 0 files" in keep.stdout, keep.stdout + keep.stderr
    gone = run_fedbox(*args, "0", env=env)
    assert gone.returncode == 0 and "removed 1 files" in gone.stdout, gone.stdout + gone.stderr
    store = target.make()
    assert store.list("", ".request") == []
    assert len(store.list("", ".response")) == 1  # b's file: only b cleans it up
