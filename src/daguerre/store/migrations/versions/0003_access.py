"""Access control: each job's tier, priority, degraded flag and webhook; operators' live
controls.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("tier", sa.String(32), nullable=True))
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("webhook_url", sa.String(2000), nullable=True))
        batch.add_column(
            sa.Column("degraded", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "controls",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("controls")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("degraded")
        batch.drop_column("webhook_url")
        batch.drop_column("priority")
        batch.drop_column("tier")
