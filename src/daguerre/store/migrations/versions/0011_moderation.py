"""Moderation refusals: each prompt moderation refused, per account, for audit.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "moderation_refusals",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(64),
            sa.ForeignKey(
                "accounts.id", ondelete="CASCADE", name="fk_moderation_refusals_account_id_accounts"
            ),
            nullable=False,
        ),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_moderation_account_created", "moderation_refusals", ["account_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_moderation_account_created", "moderation_refusals")
    op.drop_table("moderation_refusals")
