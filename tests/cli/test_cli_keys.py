"""``fedbox keys`` and ``fedbox inspect`` on encrypted files, run as real processes."""

from __future__ import annotations

import json
from pathlib import Path

from cli_process import fedbox_cli

import fedbox
from fedbox.crypto import Identity, PublicBundle, bundle_from_did

A, B = "a@x.org", "b@x.org"


def published(root: Path, email: str) -> PublicBundle:
    doc = json.loads((root / "datasites" / email / "public" / "did.json").read_text())
    return bundle_from_did(doc, email)


def test_init_creates_publishes_and_is_idempotent(root: Path, fedbox_home: Path) -> None:
    out = fedbox_cli("keys", "init", "--root", str(root), "--email", A)
    assert out.returncode == 0, out.stderr
    key_file = fedbox_home / A / "keys" / "identity.json"
    assert key_file.stat().st_mode & 0o777 == 0o600
    fp = Identity.load_or_create(fedbox_home / A, A).public_bundle().fingerprint
    assert "created keys for a@x.org" in out.stdout and fp in out.stdout
    assert published(root, A).fingerprint == fp
    again = fedbox_cli("keys", "init", "--root", str(root), "--email", A)
    assert "kept existing keys" in again.stdout and fp in again.stdout
    show = fedbox_cli("keys", "show", "--root", str(root), "--email", A)
    assert show.returncode == 0 and fp in show.stdout
    assert "datasites/a@x.org/public/did.json" in show.stdout


def test_show_a_peer_then_trust_it(root: Path) -> None:
    for email in (A, B):
        assert fedbox_cli("keys", "init", "--root", str(root), "--email", email).returncode == 0
    fp = published(root, B).fingerprint
    show = fedbox_cli("keys", "show", B, "--root", str(root), "--email", A)
    assert show.returncode == 0, show.stdout
    assert fp in show.stdout and "not pinned yet" in show.stdout
    wrong = Identity.generate(B).public_bundle().fingerprint
    refused = fedbox_cli("keys", "trust", B, wrong, "--email", A, "--root", str(root))
    assert refused.returncode == 1 and "not pinned" in refused.stdout
    bad = fedbox_cli("keys", "trust", B, "12:34", "--email", A)
    assert bad.returncode == 2 and "not a fingerprint" in bad.stdout
    ok = fedbox_cli("keys", "trust", B, fp.replace(":", "").upper(), "--email", A)
    assert ok.returncode == 0 and f"trusted b@x.org: {fp}" in ok.stdout
    show = fedbox_cli("keys", "show", B, "--root", str(root), "--email", A)
    assert "trusted (pinned)" in show.stdout
    missing = fedbox_cli("keys", "show", "c@x.org", "--root", str(root), "--email", A)
    assert missing.returncode == 1
    assert "datasites/c@x.org/public/did.json is not in the store" in missing.stdout


def test_rotate_changes_the_prekey_not_the_fingerprint(root: Path) -> None:
    none = fedbox_cli("keys", "rotate", "--root", str(root), "--email", A)
    assert none.returncode == 1 and "fedbox keys init" in none.stdout
    fedbox_cli("keys", "init", "--root", str(root), "--email", A)
    before = published(root, A)
    out = fedbox_cli("keys", "rotate", "--root", str(root), "--email", A)
    assert out.returncode == 0, out.stderr
    after = published(root, A)
    assert after.fingerprint == before.fingerprint and after.prekey_id != before.prekey_id
    assert f"{before.prekey_id} -> {after.prekey_id}" in out.stdout


def test_inspect_says_for_whom_a_file_is_encrypted(root: Path) -> None:
    with (
        fedbox.connect(root, A, encrypt=True) as a,
        fedbox.connect(root, B, encrypt=True) as b,
    ):
        b.app("t").on_request("echo")(lambda req: req.body)
        b.app("t").start()
        fut = a.app("t").send(B, "echo", b"hello cli")
        fut.wait(10)
    (request,) = root.rglob(f"{fut.id}.request")
    out = fedbox_cli("inspect", str(request))
    assert out.returncode == 0, out.stdout
    assert "encrypted (aes-256-gcm, 1 MiB segments) for b@x.org, a@x.org" in out.stdout
    assert "25 bytes of ciphertext" in out.stdout  # 9 bytes + one 16-byte tag
    (response,) = root.rglob(f"{fut.id}.response")
    out = fedbox_cli("inspect", str(response))
    assert "200 OK" in out.stdout and "for a@x.org, b@x.org" in out.stdout
