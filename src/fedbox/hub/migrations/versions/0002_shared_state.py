"""State every hub process shares (issue 15): the signing key and login rate limits.

The key moves into the database when a hub first starts after this (adopted from
``DATA/hub.key``, so tokens already handed out stay valid); see ``identity.load_secret``.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_table(
        "login_hits",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("login_hits_key", "login_hits", ["key", "at"])


def downgrade() -> None:
    op.drop_table("login_hits")
    op.drop_table("keys")
