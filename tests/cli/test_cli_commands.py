"""The fedbox command, run as a real process."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cli_process import fedbox_cli

import fedbox


def _one_call(root: Path, encrypt: bool = False) -> str:
    with (
        fedbox.connect(root, "a@x.org", encrypt=encrypt) as a,
        fedbox.connect(root, "b@x.org", encrypt=encrypt) as b,
    ):
        server = b.app("t")
        server.on_request("echo")(lambda req: req.body)
        server.start()
        fut = a.app("t").send("b@x.org", "echo", b"hello cli")
        fut.wait(10)
        return fut.id


def test_inspect_shows_header_and_digest(root: Path) -> None:
    msg_id = _one_call(root)
    (request,) = root.rglob(f"{msg_id}.request")
    out = fedbox_cli("inspect", str(request))
    assert out.returncode == 0, out.stderr
    for text in (msg_id, "a@x.org", "b@x.org", "t / echo", "9 bytes", "ok", "none (plaintext)"):
        assert text in out.stdout
    (response,) = root.rglob(f"{msg_id}.response")
    assert "200 OK" in fedbox_cli("inspect", str(response)).stdout


def test_inspect_opens_an_encrypted_body_only_for_its_recipient(
    root: Path, fedbox_home: Path
) -> None:
    msg_id = _one_call(root, encrypt=True)
    (request,) = root.rglob(f"{msg_id}.request")
    sealed = fedbox_cli("inspect", str(request))
    assert sealed.returncode == 0 and "decrypted" not in sealed.stdout
    assert "b@x.org" in sealed.stdout  # for whom it is encrypted
    opened = fedbox_cli("inspect", str(request), "--email", "b@x.org")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert "ok, 9 bytes of plaintext, authenticated" in opened.stdout
    sender = fedbox_cli("inspect", str(request), "--email", "a@x.org")
    assert "you sent it, encrypted for b@x.org: only they can open it" in sender.stdout
    other = fedbox_cli("inspect", str(request), "--email", "c@x.org")
    assert "encrypted for b@x.org, not c@x.org" in other.stdout
    keyless = fedbox_cli("inspect", str(request), "--email", "b@x.org", "--state-dir", str(root))
    assert "no keys of b@x.org" in keyless.stdout
    assert not (root / "keys").exists(), "inspecting creates no keys"
    (key_file,) = (fedbox_home / "b@x.org").rglob("identity.json")
    key_file.write_text("{not json")
    damaged = fedbox_cli("inspect", str(request), "--email", "b@x.org")
    assert damaged.returncode == 0 and "decrypted" in damaged.stdout and "no:" in damaged.stdout


def test_inspect_reports_damage(root: Path) -> None:
    msg_id = _one_call(root)
    (request,) = root.rglob(f"{msg_id}.request")
    data = request.read_bytes()
    request.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    out = fedbox_cli("inspect", str(request))
    assert out.returncode == 1 and "MISMATCH" in out.stdout
    request.write_bytes(b"garbage!")
    out = fedbox_cli("inspect", str(request))
    assert out.returncode == 1 and "bad magic" in out.stdout


def test_messages_lists_the_audit_trail_with_filters(root: Path) -> None:
    msg_id = _one_call(root)
    out = fedbox_cli("messages", "--email", "a@x.org")
    assert out.returncode == 0, out.stderr
    assert msg_id[:8] in out.stdout and "b@x.org" in out.stdout and "200" in out.stdout
    served = fedbox_cli("messages", "--email", "b@x.org", "--peer", "a@x.org", "--status", "200")
    assert msg_id[:8] in served.stdout
    none = fedbox_cli("messages", "--email", "a@x.org", "--app", "other")
    assert msg_id[:8] not in none.stdout
    missing = fedbox_cli("messages", "--email", "nobody@x.org")
    assert missing.returncode == 1 and "no audit log" in missing.stdout


def test_cleanup_command(root: Path) -> None:
    msg_id = _one_call(root)
    (request,) = root.rglob(f"{msg_id}.request")
    old = time.time() - 3 * 86400
    os.utime(request, (old, old))
    out = fedbox_cli("cleanup", "--root", str(root), "--email", "a@x.org", "--older-than", "2d")
    assert out.returncode == 0 and "removed 1 files" in out.stdout
    assert not request.exists()
    bad = fedbox_cli("cleanup", "--root", str(root), "--email", "a@x.org", "--older-than", "soon")
    assert bad.returncode != 0 and "not a duration" in bad.stderr


def test_invalid_email_is_a_clear_error(root: Path) -> None:
    out = fedbox_cli("messages", "--email", "../etc")
    assert out.returncode == 2 and "error:" in out.stdout


def test_inspect_summarises_a_flower_body(tmp_path: Path) -> None:
    store = tmp_path / "sim"
    app_dir = Path(__file__).parents[2] / "examples" / "digits"
    run = fedbox_cli(
        "simulate",
        str(app_dir),
        "--clients",
        "1",
        "--no-encrypt",
        "--root",
        str(store),
        "--run-config",
        "num-server-rounds=1",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    outputs = [fedbox_cli("inspect", str(p)) for p in store.rglob("*.request")]
    assert outputs and all(o.returncode == 0 for o in outputs)
    assert all("flower message" in o.stdout for o in outputs)
    assert any("ArrayRecord" in o.stdout and "train" in o.stdout for o in outputs)


def test_inspect_summarises_an_encrypted_flower_body_for_its_recipient(tmp_path: Path) -> None:
    store = tmp_path / "sim"
    app_dir = Path(__file__).parents[1] / "fl" / "apps" / "fbcount"
    run = fedbox_cli("simulate", str(app_dir), "--clients", "1", "--root", str(store))
    assert run.returncode == 0, run.stdout + run.stderr
    client = "client-0@sim.fedbox"
    state = tmp_path / "sim-state" / client
    requests = store.glob(f"syft_outbox_inbox_*_to_{client}/*/rpc/*/*.request")
    outs = [
        fedbox_cli("inspect", str(r), "--email", client, "--state-dir", str(state))
        for r in requests
    ]
    assert outs and all(o.returncode == 0 for o in outs)
    assert any("ArrayRecord" in o.stdout and "train" in o.stdout for o in outs)


def test_verbose_is_shown_as_a_repeatable_flag_not_an_integer() -> None:
    result = fedbox_cli("--help")
    (line,) = [line for line in result.stdout.splitlines() if "--verbose" in line]
    assert "INTEGER" not in line and "repeatable" in line, line
