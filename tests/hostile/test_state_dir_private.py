"""The state dir is private (issue 11.17).

Threat model: another user of the machine (not a fedbox participant at all) can read
what the state dir lets them: private keys, futures, the audit log. A state dir made
by an older fedbox, or by hand, with mode 0755 and files 0644 is made private on start;
one that cannot be (owned by someone else) is refused with what to do.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

import fedbox
from fedbox.datasite.workspace import Workspace
from fedbox.errors import PermissionDenied


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_an_open_state_dir_is_made_private_on_connect(
    tmp_path: Path, fedbox_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with fedbox.connect(tmp_path / "root", "a@x.org"):
        pass  # the state dir an older fedbox left: futures.db, audit.db...
    state = fedbox_home / "a@x.org"
    (state / "keys").mkdir(exist_ok=True)
    (state / "keys" / "extra.key").write_bytes(b"key")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not ours")
    outside.chmod(0o644)
    (state / "link").symlink_to(outside)
    opened = [p for p in state.rglob("*") if not p.is_symlink()]
    for path in [state, *opened]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert (state / "audit.db") in opened
    with caplog.at_level(logging.WARNING), fedbox.connect(tmp_path / "root", "a@x.org"):
        pass
    for path in [state, *opened]:
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert _mode(outside) == 0o644, "a link's target is not ours to change"
    changed = [r.getMessage() for r in caplog.records if "was open to others" in r.getMessage()]
    assert len(changed) == 1 + len(opened) and any("mode 755" in m for m in changed)


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_state_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    (state / "audit.db").write_bytes(b"x")
    os.chown(state / "audit.db", 4321, 4321)
    (state / "audit.db").chmod(0o644)
    with pytest.raises(PermissionDenied, match=r"belongs to uid 4321.*chmod go-rwx") as info:
        Workspace.for_email("a@x.org", state).ensure()
    assert info.value.path == str(state / "audit.db")


def test_what_fedbox_creates_in_the_state_dir_is_private_from_the_start(
    tmp_path: Path, fedbox_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with fedbox.connect(tmp_path / "root", "b@x.org"):
        pass  # bob's keys, published, so that alice pins him on her first send
    with fedbox.connect(tmp_path / "root", "a@x.org") as box:
        box.app("t").send("b@x.org", "echo", b"hi")
    state = fedbox_home / "a@x.org"
    made = [p for p in state.rglob("*") if p.is_file()]
    assert {"audit.db", "futures.db", "trust.sqlite3"} <= {p.name for p in made}
    assert {p: _mode(p) for p in made} == {p: 0o600 for p in made}
    with caplog.at_level(logging.WARNING), fedbox.connect(tmp_path / "root", "a@x.org"):
        pass
    assert not [r for r in caplog.records if "was open to others" in r.getMessage()]


def test_serving_and_client_state_are_private_from_the_start(
    tmp_path: Path, fedbox_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from flwr.common import Context, RecordDict

    from fedbox.fl.contexts import ContextStore

    with fedbox.connect(tmp_path / "root", "a@x.org") as box:
        server = box.app("t")
        server.on_request("echo")(lambda req: req.body)
        server.start()
        contexts = ContextStore(box.workspace.state_dir / "fl" / "app")
        contexts.save(Context(1, 2, {}, RecordDict(), {}), "m1")
    state = fedbox_home / "a@x.org"
    assert _mode(state / "serving-t.lock") == 0o600
    assert _mode(state / "fl") == _mode(state / "fl" / "app") == 0o700
    with caplog.at_level(logging.WARNING), fedbox.connect(tmp_path / "root", "a@x.org"):
        pass
    assert not [r for r in caplog.records if "was open to others" in r.getMessage()]
