"""Retention: when the sweep deleted a finished job's leftover checkpoints (``swept_at``)
and, past its tier's retention, its images, uploads and previews (``expired_at``); and
an index on ``finished_at``, the order the sweep walks finished jobs in.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("swept_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_jobs_finished", ["finished_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_finished")
        batch.drop_column("expired_at")
        batch.drop_column("swept_at")
