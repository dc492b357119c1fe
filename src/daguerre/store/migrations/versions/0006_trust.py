"""Trust: API keys get a label, an expiry and scopes; accounts get their own webhook
signing secret (with the previous one kept while receivers move over); a job may carry
its client's own id, which is unique per account only (the row's id is derived from it).
Also creates ix_jobs_pool_status_priority, which tables.py declared (admission and
preemption count waiting jobs by priority) but no migration ever made.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("label", sa.String(200), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("scopes", sa.String(200), nullable=False, server_default="images")
        )
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    # Before scopes, an admin-tier account's keys could call both /v1 and /admin: they
    # keep both, so an upgrade locks no operator out (new keys get the tier's default).
    op.execute(
        "UPDATE api_keys SET scopes = 'images admin' "
        "WHERE account_id IN (SELECT id FROM accounts WHERE tier = 'admin')"
    )
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("webhook_secret", sa.String(200), nullable=True))
        batch.add_column(sa.Column("webhook_secret_previous", sa.String(200), nullable=True))
        batch.add_column(
            sa.Column("webhook_secret_rotated_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("client_id", sa.String(64), nullable=True))
        batch.create_index("ix_jobs_account_client", ["account_id", "client_id"], unique=True)
        batch.create_index("ix_jobs_pool_status_priority", ["pool", "status", "priority"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_pool_status_priority")
        batch.drop_index("ix_jobs_account_client")
        batch.drop_column("client_id")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("webhook_secret_rotated_at")
        batch.drop_column("webhook_secret_previous")
        batch.drop_column("webhook_secret")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("scopes")
        batch.drop_column("expires_at")
        batch.drop_column("label")
