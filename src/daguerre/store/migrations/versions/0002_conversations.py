"""Conversations and their turns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(64),
            sa.ForeignKey(
                "accounts.id", ondelete="CASCADE", name="fk_conversations_account_id_accounts"
            ),
            nullable=False,
        ),
        sa.Column("title", sa.String(200), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index(
        "ix_conversations_account_updated", "conversations", ["account_id", "updated_at"]
    )
    op.create_table(
        "turns",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "conversation_id",
            sa.String(64),
            sa.ForeignKey(
                "conversations.id",
                ondelete="CASCADE",
                name="fk_turns_conversation_id_conversations",
            ),
            nullable=False,
        ),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("parent_turn_id", sa.String(64), nullable=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("conversation_id", "index", name="uq_turns_conversation_id_index"),
    )


def downgrade() -> None:
    op.drop_table("turns")
    op.drop_index("ix_conversations_account_updated", table_name="conversations")
    op.drop_table("conversations")
