"""What an app dir says: Flower components and run config, plus ``[tool.fedbox]``.

An app dir is an ordinary Flower app (``pyproject.toml`` with ``[tool.flwr.app]``).
fedbox adds one optional table, ``[tool.fedbox]``; ``[tool.syft_flwr]`` with the
same keys is accepted so projects bootstrapped for syft-flwr run unchanged.
The Flower part is read as Flower's own helpers read it (:mod:`fedbox.fl.flower_config`),
so an app that ``flwr run`` accepts is read the same way here.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from fedbox.datasite.identity import validate_email
from fedbox.errors import AppConfigError
from fedbox.fl.flower_config import fuse_run_config, project_config

if TYPE_CHECKING:
    from flwr.app import UserConfig

__all__ = [
    "AppConfig",
    "AppConfigError",
    "FederationConfig",
    "bootstrap",
    "bootstrap_syft_flwr",
    "check_node_ids",
    "load_app_config",
    "node_id_for",
    "parse_run_config",
]

logger = logging.getLogger(__name__)

PYPROJECT = "pyproject.toml"
FEDBOX_TABLE = "fedbox"
SYFT_FLWR_TABLE = "syft_flwr"
# Flower's ServerApp is node 1 (``SUPERLINK_NODE_ID``) and 0 means "unset" in
# Flower, so datasite ids never take either value.
_RESERVED_NODE_IDS = frozenset({0, 1})
_MASK_63 = (1 << 63) - 1


class FederationConfig(BaseModel):
    """``[tool.fedbox]`` (or ``[tool.syft_flwr]``): who takes part, and where.

    Every key is optional: ``fedbox simulate`` invents participants when none are
    named; ``fedbox run`` needs ``aggregator`` and ``datasites``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    aggregator: str | None = None
    datasites: tuple[str, ...] = ()
    app_name: str | None = None
    root: str | None = None
    """A folder, or a store URL (``s3://bucket/prefix``, ``webdav://host/path``...)."""
    encrypt: bool | None = None
    storage_options: dict[str, Any] = {}
    """Options for a URL root's backend, flat or in per-scheme sections like
    ``$FEDBOX_STORAGE_OPTIONS`` (which wins over them, as ``--storage-option`` wins over
    both). Keep secrets in the environment, not in a file under version control."""

    @field_validator("aggregator")
    @classmethod
    def _check_aggregator(cls, value: str | None) -> str | None:
        return None if value is None else validate_email(value)

    @field_validator("datasites")
    @classmethod
    def _check_datasites(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        emails = tuple(validate_email(v) for v in value)
        dupes = sorted({e for e in emails if emails.count(e) > 1})
        if dupes:
            raise ValueError(f"datasites are listed twice: {', '.join(dupes)}")
        return emails


class _SyftFlwrConfig(FederationConfig):
    # syft-flwr writes keys fedbox has no use for; ignore them rather than refuse
    # a project that worked there.
    model_config = ConfigDict(extra="ignore", frozen=True)


@dataclass(frozen=True, slots=True)
class AppConfig:
    """One Flower app dir, read once: everything a run needs to start."""

    app_dir: Path
    project: str
    version: str
    publisher: str
    serverapp: str
    clientapp: str
    run_config: UserConfig
    federation: FederationConfig = field(default_factory=FederationConfig)
    federation_source: str | None = None
    """``"tool.fedbox"``, ``"tool.syft_flwr"`` or None when neither table exists."""

    @property
    def fab_id(self) -> str:
        return f"{self.publisher}/{self.project}"


def load_app_config(app_dir: str | Path) -> AppConfig:
    """Read and validate ``app_dir/pyproject.toml``; raise AppConfigError naming the fix.

    A plain config is read without importing Flower (:mod:`fedbox.fl.flower_config`):
    ``fedbox simulate`` reads it before it starts its client processes."""
    app_dir = Path(app_dir).expanduser().resolve()
    if not (app_dir / PYPROJECT).is_file():
        raise AppConfigError(f"{app_dir} is not a Flower app: no {PYPROJECT} in it")
    try:
        raw, run_config = project_config(app_dir)
    except tomllib.TOMLDecodeError as exc:
        raise AppConfigError(f"{app_dir / PYPROJECT} is not valid TOML: {exc}") from exc
    except (ValueError, FileNotFoundError) as exc:
        raise AppConfigError(f"{app_dir / PYPROJECT}: {exc}") from exc
    flwr_app = raw["tool"]["flwr"]["app"]
    components = flwr_app["components"]
    federation, source = _federation(raw.get("tool", {}), app_dir)
    return AppConfig(
        app_dir=app_dir,
        project=str(raw["project"]["name"]),
        version=str(raw["project"]["version"]),
        publisher=str(flwr_app["publisher"]),
        serverapp=str(components["serverapp"]),
        clientapp=str(components["clientapp"]),
        run_config=run_config,
        federation=federation,
        federation_source=source,
    )


def _federation(tool: Mapping[str, Any], app_dir: Path) -> tuple[FederationConfig, str | None]:
    has_fedbox, has_syft = FEDBOX_TABLE in tool, SYFT_FLWR_TABLE in tool
    if has_fedbox and has_syft and tool[FEDBOX_TABLE] and tool[SYFT_FLWR_TABLE]:
        logger.warning(
            "%s has both [tool.fedbox] and [tool.syft_flwr]; using [tool.fedbox]", app_dir
        )
    if has_fedbox and (tool[FEDBOX_TABLE] or not has_syft):
        name, model = FEDBOX_TABLE, FederationConfig
    elif has_syft:
        name, model = SYFT_FLWR_TABLE, _SyftFlwrConfig
    else:
        return FederationConfig(), None
    try:
        config = model.model_validate(tool[name])
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or name}: {err['msg']}" for err in exc.errors()
        )
        raise AppConfigError(f"[tool.{name}] in {app_dir / PYPROJECT}: {problems}") from exc
    return FederationConfig.model_validate(config.model_dump()), f"tool.{name}"


def parse_run_config(
    defaults: UserConfig, overrides: str | Iterable[str] | None = None
) -> UserConfig:
    """Fuse ``--run-config`` overrides into the app's defaults, ``flwr run`` style.

    ``overrides`` uses Flower's syntax (``"lr=0.1 name='x'"``, TOML values, or one
    ``.toml`` path). Unknown keys are refused, as Flower does, so a typo fails loudly.
    """
    if overrides is None:
        return dict(defaults)
    items = [overrides] if isinstance(overrides, str) else list(overrides)
    try:
        return fuse_run_config(dict(defaults), [i for i in items if i.strip()])
    except ValueError as exc:
        known = ", ".join(sorted(defaults)) or "(none)"
        raise AppConfigError(f"--run-config: {exc}; known keys: {known}") from exc
    except Exception as exc:  # click.ClickException for malformed strings
        raise AppConfigError(f"--run-config {' '.join(items)!r}: {exc}") from exc


def node_id_for(email: str) -> int:
    """A stable 63-bit Flower node id for an email, identical on every participant.

    The first 8 bytes of SHA-256 of the email, masked to 63 bits so it fits a
    signed int64 anywhere (protobuf, SQLite); 0 and 1 are Flower's, never ours.
    """
    digest = hashlib.sha256(validate_email(email).encode("utf-8")).digest()
    value = int.from_bytes(digest[:8], "big") & _MASK_63
    while value in _RESERVED_NODE_IDS:  # astronomically rare; stays deterministic
        digest = hashlib.sha256(digest).digest()
        value = int.from_bytes(digest[:8], "big") & _MASK_63
    return value


def check_node_ids(emails: Iterable[str]) -> dict[int, str]:
    """``{node_id: email}`` for a federation, or ValueError on a duplicate or collision."""
    by_id: dict[int, str] = {}
    for email in emails:
        node_id = node_id_for(email)
        other = by_id.get(node_id)
        if other == email:
            raise ValueError(f"{email} is listed twice in the federation")
        if other is not None:
            raise ValueError(
                f"{email} and {other} map to the same node id {node_id}; rename one of them"
            )
        by_id[node_id] = email
    return by_id


_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def bootstrap(
    app_dir: str | Path,
    aggregator: str,
    datasites: Iterable[str],
    *,
    app_name: str | None = None,
    root: str | None = None,
    encrypt: bool | None = None,
) -> Path:
    """Write ``[tool.fedbox]`` into the app's pyproject.toml, keeping everything else.

    Only the lines of an existing ``[tool.fedbox]`` table are replaced (comments and
    layout elsewhere survive); the result is re-read to prove nothing else changed.
    Its ``storage_options``, which bootstrap has no argument for, are kept.
    """
    path = _pyproject_path(app_dir)
    text = path.read_text(encoding="utf-8")
    values = _federation_values(
        _parse_toml(text, path),
        FEDBOX_TABLE,
        aggregator,
        datasites,
        app_name=app_name,
        root=root,
        encrypt=encrypt,
    )
    _write_table(path, text, FEDBOX_TABLE, values)
    return path


def bootstrap_syft_flwr(
    app_dir: str | Path,
    aggregator: str,
    datasites: Iterable[str],
    *,
    app_name: str | None = None,
    root: str | None = None,
    encrypt: bool | None = None,
    now: float | None = None,
) -> Path:
    """What syft-flwr's bootstrap makes of a Flower app, so the project also runs there:
    ``[tool.syft_flwr]`` (``app_name``, default ``{aggregator}_{project}_{unix_time}``,
    ``datasites``, ``aggregator``, ``transport = "syftbox"``) and the ``main.py`` that
    starts a participant's role (:data:`fedbox.fl.syft_compat.MAIN_PY`).

    Like syft-flwr, it refuses an app that already has a ``main.py``; unlike it, it
    leaves the rest of pyproject.toml as it was (syft-flwr rewrites the whole file,
    adds itself to the dependencies, which cannot be installed beside current Flower,
    and puts ``partition-id``/``num-partitions`` in the run config, which fedbox gives
    each datasite in ``node_config`` instead). Returns the path of ``main.py``.
    """
    from fedbox.fl.syft_compat import MAIN_PY  # the stand-in package imports this module

    path = _pyproject_path(app_dir)
    main_py = path.parent / "main.py"
    if main_py.exists():
        raise AppConfigError(f"{main_py} already exists; move it away to bootstrap for syft-flwr")
    text = path.read_text(encoding="utf-8")
    parsed = _parse_toml(text, path)
    project = str(parsed.get("project", {}).get("name", path.parent.name))
    name = app_name or f"{aggregator}_{project}_{int(time.time() if now is None else now)}"
    values = _federation_values(
        parsed, SYFT_FLWR_TABLE, aggregator, datasites, app_name=name, root=root, encrypt=encrypt
    )
    values["transport"] = "syftbox"
    _write_table(path, text, SYFT_FLWR_TABLE, values)
    main_py.write_text(MAIN_PY, encoding="utf-8")
    logger.info("wrote %s", main_py)
    return main_py


def _pyproject_path(app_dir: str | Path) -> Path:
    path = Path(app_dir).expanduser().resolve() / PYPROJECT
    if not path.is_file():
        raise AppConfigError(f"{path.parent} is not a Flower app: no {PYPROJECT} in it")
    return path


def _write_table(path: Path, text: str, table: str, values: Mapping[str, Any]) -> None:
    new_text = _with_table(text, table, values)
    _check_only_table_changed(text, new_text, table, values, path)
    _replace_file(path, new_text)
    logger.info("wrote [tool.%s] into %s", table, path)


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AppConfigError(f"{path} is not valid TOML: {exc}") from exc


def _federation_values(
    existing: Mapping[str, Any],
    table: str,
    aggregator: str,
    datasites: Iterable[str],
    **optional: Any,
) -> dict[str, Any]:
    """The ``[tool.{table}]`` keys to write, validated: the given ones, plus the existing
    table's ``storage_options``; AppConfigError for a bad or colliding participant."""
    values: dict[str, Any] = {"aggregator": aggregator, "datasites": list(datasites)}
    values.update({key: value for key, value in optional.items() if value is not None})
    kept_options = existing.get("tool", {}).get(table, {}).get("storage_options")
    if kept_options:
        values["storage_options"] = kept_options
    try:
        federation = FederationConfig.model_validate(values)
    except ValidationError as exc:
        raise AppConfigError(f"bootstrap: {exc.errors()[0]['msg']}") from exc
    if federation.aggregator in federation.datasites:
        raise AppConfigError(f"{aggregator} cannot be both the aggregator and a datasite")
    try:
        check_node_ids([aggregator, *federation.datasites])
    except ValueError as exc:
        raise AppConfigError(str(exc)) from exc
    return values


def _with_table(text: str, table: str, values: Mapping[str, Any]) -> str:
    """``text`` with its ``[tool.{table}]`` (if any) replaced by one holding ``values``."""
    kept = _drop_table(text.splitlines(keepends=True), f"tool.{table}")
    rendered = tomli_w.dumps({"tool": {table: dict(values)}})
    # tomli_w writes ``[tool.{table}]`` directly since ``tool`` holds only a table.
    body = "".join(kept).rstrip("\n")
    return f"{body}\n\n{rendered}" if body else rendered


def _check_only_table_changed(
    old_text: str, new_text: str, table: str, values: Mapping[str, Any], path: Path
) -> None:
    """AppConfigError unless the new file differs from the old only in ``[tool.{table}]``,
    which must read back as ``values``."""
    before, after = tomllib.loads(old_text), tomllib.loads(new_text)
    before_tool, after_tool = dict(before.pop("tool", {})), dict(after.pop("tool", {}))
    before_tool.pop(table, None)
    written = after_tool.pop(table, None)
    if after_tool != before_tool or after != before:
        raise AppConfigError(
            f"could not update {path} without touching other settings; "
            f"add a [tool.{table}] table by hand"
        )
    if written != values:
        raise AppConfigError(f"could not write [tool.{table}] into {path}; add it by hand")


def _replace_file(path: Path, text: str) -> None:
    """Write beside ``path``, then rename over it: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.fedbox-tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _drop_table(lines: list[str], table: str) -> list[str]:
    """The lines without ``[table]`` and its sub-tables (up to the next other header)."""
    kept: list[str] = []
    skipping = False
    for line in lines:
        match = _TABLE_HEADER.match(line)
        if match:
            name = match.group(1).replace(" ", "").replace('"', "")
            skipping = name == table or name.startswith(table + ".")
        if not skipping:
            kept.append(line)
    return kept
