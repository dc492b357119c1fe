"""The SQL schema. Alembic migrations in ``store/migrations`` create and evolve it;
these classes describe the current shape for queries (and for autogenerate)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so later migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way out, whatever the database kept (SQLite keeps none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(32))
    product: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Signs this account's webhooks (HMAC-SHA256). Kept readable, unlike API keys: the
    # worker needs it to sign. The previous one still signs, beside it, for a while
    # after a rotation, so receivers can move over (see workers/webhooks.py).
    webhook_secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    webhook_secret_previous: Mapped[str | None] = mapped_column(String(200), nullable=True)
    webhook_secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # sha256 of the key: a leaked database does not leak working keys.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the key, to tell keys apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # A name the owner gave it ("ci", "demo"), to tell keys apart.
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # After this the key no longer authenticates; None: never expires.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Space-separated: "images" (the user APIs) and/or "admin" (the /admin API).
    scopes: Mapped[str] = mapped_column(String(200), default="images", server_default="images")
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # Queue position: queued jobs of one pool in arrival order.
        Index("ix_jobs_pool_status_created", "pool", "status", "created_at"),
        # Preemption and admission: waiting jobs of one pool above a priority.
        Index("ix_jobs_pool_status_priority", "pool", "status", "priority"),
        Index("ix_jobs_account_created", "account_id", "created_at"),
        # A client's own job ids are its own: unique per account, not across accounts.
        Index("ix_jobs_account_client", "account_id", "client_id", unique=True),
        # The retention sweep: finished jobs in the order they ended.
        Index("ix_jobs_finished", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # The id the client chose (POST /v1/jobs {"id": ...}); ``id`` is derived from it and
    # the account, so two accounts may use the same one (see gateway/services/jobs.py).
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pool: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Admission: the submitter's tier, the Temporal priority key the job runs at, and
    # whether it got the tier's reduced (degraded-mode) settings.
    tier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    priority: Mapped[int | None] = mapped_column(Integer, nullable=True)
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where to POST the job once it is final (signed; see workers/webhooks.py).
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    preview_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Until when someone watches the job: its worker writes previews and steps for it.
    watched_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resumed_from_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Times its render gave its worker slot to waiting work of a higher priority.
    preemptions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Machine-readable kind of failure, see domain.ErrorCode.
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The retention sweep (gateway/services/retention.py): when it deleted the finished
    # job's leftover checkpoints, and when its tier's retention deleted its images.
    swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ImageRow(Base):
    __tablename__ = "images"
    # One row per (job, index): a retried activity upserts rather than duplicates.
    __table_args__ = (UniqueConstraint("job_id", "index", name="uq_images_job_id_index"),)

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    blob_key: Mapped[str] = mapped_column(String(255))
    encoding_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    media_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # What the model understood the prompt as (domain.ImageRecord.revised_prompt).
    revised_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModerationRow(Base):
    """A prompt moderation refused: who, when, by which policy, why, and the prompt, for
    the operators' audit (``GET /admin/moderation``)."""

    __tablename__ = "moderation_refusals"
    __table_args__ = (Index("ix_moderation_account_created", "account_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    policy: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    prompt: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditRow(Base):
    """An operator's change through the admin API: who made it, what (the route and the
    JSON it sent) and when, shown on the operator page (``GET /admin/audit``). Never a
    secret: a key's secret is not part of what an operator sends."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_created", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # "admin-key" (DAGUERRE_ADMIN_KEY) or the account id of a key with the admin scope.
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(300))  # e.g. "PATCH /admin/tiers/free"
    change: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FileRow(Base):
    """A file an account uploaded (``POST /v1/files``): an image it can name by id in an
    edit. The bytes are in the blob store (blob_layout.file_key)."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_account_created", "account_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    media_type: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConversationRow(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_account_updated", "account_id", "updated_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TurnRow(Base):
    __tablename__ = "turns"
    # Turn numbers are per conversation; two turns racing for one number: one retries.
    __table_args__ = (
        UniqueConstraint("conversation_id", "index", name="uq_turns_conversation_id_index"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16))  # "new" | "edit", as resolved
    # The turn whose image this one edits (None for a new image). No foreign key to
    # jobs: the turn is recorded first, so its number is taken before the job starts.
    parent_turn_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    job_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ControlRow(Base):
    """An operator's live override (a tier's limits, a feature flag, a pool's degraded
    mode), read by every gateway every second or so."""

    __tablename__ = "controls"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WorkerRow(Base):
    """A worker process as it last reported itself (store/workers.py): what it can run
    and how fast it has been rendering. A row whose ``updated_at`` is older than a few
    report intervals belongs to a worker that is gone and counts for nothing."""

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_pool_updated", "pool", "updated_at"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # host:pid:random
    pool: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    # Renders it takes at once per job queue (its batch budget plus its waiting room).
    slots: Mapped[int] = mapped_column(Integer)
    # Images its engine steps together at most.
    batch_images: Mapped[int] = mapped_column(Integer)
    running: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Measured from its real renders; None until it has rendered.
    step_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    images_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LeaseRow(Base):
    """A named lease one process holds until ``expires_at`` (store/leases.py): e.g. the
    gateway replica that exports the queue-depth gauges, so that summing every
    replica's figures counts the queue once."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
