"""The hub's first schema (issue 13): files, the change log, logins, codes, uploads.

A hub.db made before migrations existed holds exactly this; ``fedbox hub migrate``
recognises one (tables, no version) and records it as this revision.

Revision ID: 0001
Revises: -
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("path", sa.String(4096), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("writer", sa.String(254), nullable=False),
        sa.Column("mtime", sa.Float, nullable=False),
        sa.Column("blob", sa.String(64), nullable=False),
    )
    op.create_index("files_writer", "files", ["writer"])
    op.create_table(
        "changes",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("old_path", sa.String(4096), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("writer", sa.String(254), nullable=False),
        sa.Column("time", sa.Float, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("refresh_hash", sa.String(64), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_index("sessions_email", "sessions", ["email"])
    op.create_table(
        "codes",
        sa.Column("email", sa.String(254), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("writer", sa.String(254), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("uploads_by_target", "uploads", ["writer", "path", "size"])


def downgrade() -> None:
    for table in ("uploads", "codes", "sessions", "changes", "files"):
        op.drop_table(table)
