"""Preemption: how many times a job's render handed its worker slot to waiting work of a
higher priority (see workers/preemption.py), and an index to find that waiting work.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("preemptions", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_index("ix_jobs_pool_status_priority", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("preemptions")
