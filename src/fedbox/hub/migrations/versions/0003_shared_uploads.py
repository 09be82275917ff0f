"""Resumable uploads shared by every hub process: their parts are blobs, their offset a row.

Unfinished uploads from before kept their bytes in one process's ``DATA/uploads``, out of
reach of the others: they are dropped (a client asking again starts from the beginning),
and that folder can be deleted.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM uploads"))
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("received", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("touched", sa.Float, nullable=False, server_default="0"))
    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.String(32), primary_key=True),
        sa.Column("start", sa.BigInteger, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("blob", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upload_parts")
    op.execute(sa.text("DELETE FROM uploads"))
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("touched")
        batch.drop_column("received")
