"""Job and image rows as the records the rest of the code sees (domain.JobRecord).

One place for the conversion, so that the job repository (store/jobs.py) and the queue's
read models (store/queue_stats.py) agree on what a row means. Both ORM objects and Core
rows come in: they carry the columns as attributes alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from daguerre.domain import ImageRecord, JobRecord, JobSpec, JobStatus


def timestamp(value: datetime | None) -> float | None:
    """A column's time as seconds since the epoch (None stays None)."""
    return value.timestamp() if value is not None else None


def image_record(row: Any) -> ImageRecord:
    """An image row as a record."""
    return ImageRecord(
        id=row.id,
        job_id=row.job_id,
        index=row.index,
        account_id=row.account_id,
        blob_key=row.blob_key,
        encoding_key=row.encoding_key,
        media_type=row.media_type,
        width=row.width,
        height=row.height,
        revised_prompt=row.revised_prompt,
    )


def job_record(row: Any, images: Sequence[Any] = ()) -> JobRecord:
    """A job row and its image rows as one record, images in index order."""
    return JobRecord(
        id=row.id,
        account_id=row.account_id,
        pool=row.pool,
        status=JobStatus(row.status),
        spec=JobSpec(**row.spec),
        created_at=row.created_at.timestamp(),
        step=row.step,
        total_steps=row.total_steps,
        preview_key=row.preview_key,
        resumed_from_step=row.resumed_from_step,
        attempts=row.attempts,
        preemptions=row.preemptions or 0,
        error=row.error,
        error_code=row.error_code,
        started_at=timestamp(row.started_at),
        finished_at=timestamp(row.finished_at),
        images=[image_record(i) for i in sorted(images, key=lambda i: i.index)],
        tier=row.tier,
        priority=row.priority,
        degraded=bool(row.degraded),
        webhook_url=row.webhook_url,
        client_id=row.client_id,
        expired_at=timestamp(row.expired_at),
    )
