"""The hub's schema over time: Alembic migrations shipped inside fedbox.

The scripts live in ``fedbox/hub/migrations`` (package data, no alembic.ini): an
installed fedbox upgrades its own database with ``fedbox hub migrate``. A hub process
serves only the schema its code was written for: an empty database gets it at start,
an older one is refused until migrated, so processes of two versions never share one.
A hub.db from before migrations existed is recognised (tables, no version) as revision
0001 and upgraded from there, keeping its files, logins and codes.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from fedbox.errors import FedboxError
from fedbox.hub.schema import WRITE, lock_schema

__all__ = ["SCRIPTS", "OutdatedSchema", "ensure_current", "head", "upgrade"]

SCRIPTS = Path(__file__).with_name("migrations")
BEFORE_MIGRATIONS = "0001"
"""The revision of a database made by the hub before it had migrations."""


class OutdatedSchema(FedboxError):
    """The database holds an older schema than this hub's code: run ``fedbox hub migrate``."""


def _config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = conn
    return config


def head() -> str:
    """The newest revision this fedbox knows."""
    newest = ScriptDirectory.from_config(_config()).get_current_head()
    assert newest is not None
    return newest


def _current(conn: Connection) -> str | None:
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is None and inspect(conn).has_table("files"):
        return BEFORE_MIGRATIONS
    return revision


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to :func:`head` in one transaction; (revision before, after).
    Processes doing this at once take turns; the later ones find nothing to do."""
    with engine.connect() as conn:
        conn.execution_options(**WRITE)
        with conn.begin():
            lock_schema(conn)
            before = _current(conn)
            config = _config(conn)
            if before == BEFORE_MIGRATIONS:
                command.stamp(config, BEFORE_MIGRATIONS)  # no-op if it was stamped already
            command.upgrade(config, "head")
    return before, head()


def ensure_current(engine: Engine) -> None:
    """Create the schema in an empty database; refuse (OutdatedSchema) an older one."""
    with engine.connect() as conn:
        revision = _current(conn)
    if revision is None:
        upgrade(engine)
        return
    newest = head()
    if revision != newest:
        raise OutdatedSchema(
            f"the hub database is at schema revision {revision}, this fedbox serves "
            f"{newest}: stop every hub process and run `fedbox hub migrate` with the "
            "same --data/--db first"
        )
