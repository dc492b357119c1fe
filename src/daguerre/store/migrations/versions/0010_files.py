"""Files: what an account uploaded through ``/v1/files`` (images it can name by id in
an edit); the bytes are in the blob store.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(64),
            sa.ForeignKey("accounts.id", ondelete="CASCADE", name="fk_files_account_id_accounts"),
            nullable=False,
        ),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("blob_key", sa.String(255), nullable=False),
        # A migration stays as it was written: the column type spelled out, not imported.
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_files_account_created", "files", ["account_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_files_account_created", "files")
    op.drop_table("files")
