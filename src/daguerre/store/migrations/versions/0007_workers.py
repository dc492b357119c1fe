"""Workers: the registry each worker process reports itself to every few seconds (its
pool, host, slots, batch budget, renders running and measured pace), so that admission
reads the capacity of the workers that actually run, on whatever host, rather than
guessing it from the launcher's ``processes`` setting (store/workers.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("pool", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("batch_images", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("step_s", sa.Float(), nullable=True),
        sa.Column("images_per_s", sa.Float(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_workers_pool_updated", "workers", ["pool", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_workers_pool_updated", table_name="workers")
    op.drop_table("workers")
