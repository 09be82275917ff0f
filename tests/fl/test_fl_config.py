"""Reading an app dir, node ids, --run-config and `bootstrap`."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from fl_helpers import DIGITS, FBCOUNT, FEDERATION_ARGS, run_fedbox

from fedbox.fl import config as fl_config
from fedbox.fl.config import (
    AppConfigError,
    bootstrap,
    check_node_ids,
    load_app_config,
    node_id_for,
    parse_run_config,
)


def _copy(app: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(app, tmp_path / app.name))


def test_node_ids_are_stable_63_bit_and_never_flower_reserved() -> None:
    ids = [node_id_for(f"client-{i}@sim.fedbox") for i in range(500)]
    assert ids == [node_id_for(f"client-{i}@sim.fedbox") for i in range(500)]
    assert all(2 <= i < 2**63 for i in ids)
    assert len(set(ids)) == len(ids)


def test_node_id_collisions_and_duplicates_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="listed twice"):
        check_node_ids(["a@x.org", "a@x.org"])
    monkeypatch.setattr(fl_config, "node_id_for", lambda email: 42)
    with pytest.raises(ValueError, match="same node id 42"):
        check_node_ids(["a@x.org", "b@x.org"])


def test_flower_part_of_the_app_dir_is_read_with_flowers_rules() -> None:
    app = load_app_config(DIGITS)
    assert (app.project, app.publisher, app.fab_id) == ("digits", "fedbox", "fedbox/digits")
    assert app.serverapp == "digits.server_app:app"
    assert app.run_config["num-server-rounds"] == 5 and app.run_config["iid"] is True
    assert app.federation_source == "tool.fedbox" and app.federation.datasites == ()


def test_missing_components_name_the_fix(tmp_path: Path) -> None:
    app = _copy(FBCOUNT, tmp_path)
    text = (app / "pyproject.toml").read_text().replace('clientapp = "fbcount.client_app:app"', "")
    (app / "pyproject.toml").write_text(text)
    with pytest.raises(AppConfigError, match="clientapp"):
        load_app_config(app)
    with pytest.raises(AppConfigError, match=r"no pyproject\.toml"):
        load_app_config(tmp_path)


def test_syft_flwr_table_is_accepted_and_its_extra_keys_ignored(tmp_path: Path) -> None:
    app = _copy(FBCOUNT, tmp_path)
    with open(app / "pyproject.toml", "a") as f:
        f.write(
            '\n[tool.syft_flwr]\naggregator = "ds@uni.org"\n'
            'datasites = ["do1@hosp.org", "do2@lab.org"]\napp_name = "fl-diabetes"\n'
            'some_syft_only_key = "x"\n'
        )
    cfg = load_app_config(app)
    assert cfg.federation_source == "tool.syft_flwr"
    assert cfg.federation.aggregator == "ds@uni.org"
    assert cfg.federation.datasites == ("do1@hosp.org", "do2@lab.org")
    assert cfg.federation.app_name == "fl-diabetes"


def test_fedbox_table_refuses_typos_and_bad_emails(tmp_path: Path) -> None:
    app = _copy(FBCOUNT, tmp_path)
    pyproject = app / "pyproject.toml"
    base = pyproject.read_text()
    pyproject.write_text(base + '\n[tool.fedbox]\naggregatr = "a@x.org"\n')
    with pytest.raises(AppConfigError, match="aggregatr"):
        load_app_config(app)
    pyproject.write_text(base + '\n[tool.fedbox]\ndatasites = ["../etc@x.org"]\n')
    with pytest.raises(AppConfigError, match=r"tool.fedbox.*datasites"):
        load_app_config(app)


def test_run_config_overrides_use_flowers_syntax() -> None:
    defaults = load_app_config(DIGITS).run_config
    fused = parse_run_config(defaults, "lr=0.05 iid=false local-epochs=2")
    assert (fused["lr"], fused["iid"], fused["local-epochs"]) == (0.05, False, 2)
    assert fused["seed"] == defaults["seed"]
    assert parse_run_config(defaults, None) == defaults
    with pytest.raises(AppConfigError, match=r"lrr.*known keys"):
        parse_run_config(defaults, "lrr=0.1")


def test_bootstrap_writes_the_table_and_keeps_everything_else(tmp_path: Path) -> None:
    app = _copy(DIGITS, tmp_path)
    pyproject = app / "pyproject.toml"
    before = pyproject.read_text()
    bootstrap(app, "ds@uni.org", ["do1@hosp.org", "do2@lab.org"])
    bootstrap(app, "ds@uni.org", ["do1@hosp.org", "do3@lab.org"], app_name="trial-1")
    after = pyproject.read_text()
    assert "# fedbox needs nothing here" in after  # comments elsewhere survive
    parsed, original = tomllib.loads(after), tomllib.loads(before)
    assert parsed["tool"]["fedbox"] == {
        "aggregator": "ds@uni.org",
        "datasites": ["do1@hosp.org", "do3@lab.org"],
        "app_name": "trial-1",
    }
    del parsed["tool"]["fedbox"], original["tool"]["fedbox"]
    assert parsed == original
    cfg = load_app_config(app)
    assert cfg.federation.datasites == ("do1@hosp.org", "do3@lab.org")


def test_bootstrap_refuses_a_federation_that_cannot_work(tmp_path: Path) -> None:
    app = _copy(DIGITS, tmp_path)
    before = (app / "pyproject.toml").read_text()
    with pytest.raises(AppConfigError, match="both the aggregator and a datasite"):
        bootstrap(app, "ds@uni.org", ["ds@uni.org"])
    with pytest.raises(AppConfigError, match="path separator"):
        bootstrap(app, "ds@uni.org", ["a/b@x.org"])
    assert (app / "pyproject.toml").read_text() == before


def test_bootstrap_command_writes_the_table_and_run_then_knows_the_roles(tmp_path: Path) -> None:
    app = _copy(FBCOUNT, tmp_path)
    result = run_fedbox("bootstrap", str(app), *FEDERATION_ARGS, "--root", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    assert "wrote [tool.fedbox]" in result.stdout
    assert f"do1@hosp.org  node id {node_id_for('do1@hosp.org')}" in result.stdout
    stranger = run_fedbox("run", str(app), "--email", "eve@evil.org")
    assert stranger.returncode == 2
    assert "neither the aggregator (ds@uni.org) nor a datasite" in stranger.stderr


def test_bootstrap_keeps_storage_options_and_they_load(tmp_path: Path) -> None:
    app = _copy(DIGITS, tmp_path)
    with open(app / "pyproject.toml", "a") as f:
        f.write('root = "s3://bucket/fed"\n\n[tool.fedbox.storage_options.s3]\n')
        f.write('endpoint_url = "http://127.0.0.1:9000"\n')
    options = {"s3": {"endpoint_url": "http://127.0.0.1:9000"}}
    assert load_app_config(app).federation.storage_options == options
    bootstrap(app, "ds@uni.org", ["do1@hosp.org"], root="s3://bucket/fed")
    federation = load_app_config(app).federation
    assert federation.storage_options == options and federation.root == "s3://bucket/fed"
    assert federation.datasites == ("do1@hosp.org",)
