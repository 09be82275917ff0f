"""Participants on a hub: each acts as its own login, and its published keys reach its peers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_process import HubProcess
from typer.testing import CliRunner

from fedbox.cli.main import app
from fedbox.datasite.permission_files import PUBLIC_READ
from fedbox.datasite.workspace import Workspace
from fedbox.errors import PERMISSION_FILE
from fedbox.hub.credentials import login, request_code
from fedbox.rpc import connect
from fedbox.rpc.sealing import did_path, read_published
from fedbox.store import StoreIdentity, open_store

ALICE, BOB = "alice@lab.org", "bob@hospital.org"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A hub that lets every test log in afresh (each gets its own FEDBOX_HOME)."""
    limits = ("--login-per-email", "10000", "--login-per-address", "10000")
    server = HubProcess(Path(tmp_path_factory.mktemp("hub")), *limits)
    yield server
    server.stop()


def _url(hub: HubProcess) -> str:
    return f"hub://127.0.0.1:{hub.port}"


def _login(hub: HubProcess, email: str, state_dir: Path | None = None) -> None:
    code = request_code(_url(hub), email)
    assert code is not None
    login(_url(hub), email, code, state_dir)


def test_connect_acts_as_its_email_among_several_logins(hub: HubProcess, fedbox_home: Path) -> None:
    for email in (ALICE, BOB):
        _login(hub, email)
    for email in (ALICE, BOB):
        with connect(_url(hub), email, encrypt=False) as box:
            box.store.put(f"datasites/{email}/note.txt", email.encode())
            assert repr(box.store).endswith(f"as {email})")


def test_connect_uses_the_login_in_a_given_state_dir(hub: HubProcess, tmp_path: Path) -> None:
    state = tmp_path / "elsewhere"
    _login(hub, ALICE, state)
    with connect(_url(hub), ALICE, state_dir=state, encrypt=False) as box:
        box.store.put(f"datasites/{ALICE}/here.txt", b"x")


def test_an_email_storage_option_wins_over_the_identity(hub: HubProcess, fedbox_home: Path) -> None:
    for email in (ALICE, BOB):
        _login(hub, email)
    with open_store(_url(hub), identity=StoreIdentity(ALICE), email=BOB) as store:
        assert repr(store).endswith(f"as {BOB})")


def test_the_identity_means_nothing_to_a_folder(tmp_path: Path) -> None:
    with open_store(tmp_path, identity=StoreIdentity(ALICE)) as store:
        store.put("a.txt", b"x")
        assert store.read("a.txt") == b"x"


def test_published_keys_are_readable_by_every_peer(hub: HubProcess, fedbox_home: Path) -> None:
    for email in (ALICE, BOB):
        _login(hub, email)
    with connect(_url(hub), ALICE):
        pass
    with open_store(_url(hub), identity=StoreIdentity(BOB)) as bob:
        assert bob.read(f"datasites/{ALICE}/public/{PERMISSION_FILE}") == PUBLIC_READ.encode()
        assert bob.exists(did_path(ALICE))
        read_published(bob, ALICE)


def test_an_owners_own_public_permission_file_is_kept(hub: HubProcess, fedbox_home: Path) -> None:
    for email in (ALICE, BOB):
        _login(hub, email)
    own = f'rules:\n  - pattern: "**"\n    access:\n      read: ["{BOB}"]\n'.encode()
    grant = f"datasites/{ALICE}/public/{PERMISSION_FILE}"
    with open_store(_url(hub), identity=StoreIdentity(ALICE)) as alice:
        alice.put(grant, own)
    with connect(_url(hub), ALICE):
        pass
    with open_store(_url(hub), identity=StoreIdentity(ALICE)) as alice:
        assert alice.read(grant) == own


def test_keys_init_publishes_readable_keys_on_a_hub(hub: HubProcess, fedbox_home: Path) -> None:
    for email in (ALICE, BOB):
        _login(hub, email)
    done = CliRunner().invoke(app, ["keys", "init", "--root", _url(hub), "--email", ALICE])
    assert done.exit_code == 0, done.output
    with open_store(_url(hub), identity=StoreIdentity(BOB)) as bob:
        assert bob.exists(did_path(ALICE))
        read_published(bob, ALICE)
    assert (Workspace.for_email(ALICE).state_dir / "keys").is_dir()


def test_dataset_and_cleanup_commands_act_as_their_email_on_a_hub(
    hub: HubProcess, fedbox_home: Path, tmp_path: Path
) -> None:
    for email in (ALICE, BOB):
        _login(hub, email)
    private, mock = tmp_path / "private", tmp_path / "mock"
    for folder in (private, mock):
        folder.mkdir()
        (folder / "rows.csv").write_text("x,1\n")
    root = ["--root", _url(hub), "--email", BOB]
    runner = CliRunner()
    created = runner.invoke(
        app, ["dataset", "create", "visits", "--private", str(private), "--mock", str(mock), *root]
    )
    assert created.exit_code == 0, created.output
    published = f"datasites/{BOB}/public/datasets/visits/dataset.json"
    with open_store(_url(hub), identity=StoreIdentity(ALICE)) as alice:
        assert alice.exists(published), "published where everyone reads"
    cleaned = runner.invoke(app, ["cleanup", "--older-than", "1d", *root])
    assert cleaned.exit_code == 0, cleaned.output
    deleted = runner.invoke(app, ["dataset", "delete", "visits", *root])
    assert deleted.exit_code == 0, deleted.output
    with open_store(_url(hub), identity=StoreIdentity(ALICE)) as alice:
        assert not alice.exists(published)
