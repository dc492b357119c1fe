"""The job repository: a job's row from its insert to its outcome.

A job is inserted waiting (queued or deferred); from then on its status changes only
through the lifecycle's table of allowed moves (store/job_states.py), whoever writes it:
the worker (started, paused, resumed, completed, finalized), or the gateway (cancelled
by its owner, failed as an orphan or as a workflow that closed unfinished). A move the
table refuses is not written and returns False. The counts that admission and the
metrics read live apart, in store/queue_stats.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from daguerre.domain import (
    TERMINAL_STATUSES,
    WAITING_STATUSES,
    ErrorCode,
    ImageRecord,
    JobRecord,
    JobSpec,
    JobStatus,
)
from daguerre.store.job_records import image_record, job_record
from daguerre.store.job_states import JobChanges
from daguerre.store.tables import ImageRow, JobRow, utcnow

_TERMINAL = [s.value for s in TERMINAL_STATUSES]
_WAITING = [s.value for s in WAITING_STATUSES]
_JOBS = JobRow.__table__
_IMAGES = ImageRow.__table__
# A new row's columns that its insert leaves to their defaults.
_NO_PROGRESS = {
    "total_steps": None,
    "preview_key": None,
    "resumed_from_step": None,
    "error": None,
    "error_code": None,
    "started_at": None,
    "finished_at": None,
    "expired_at": None,
}


class JobStore:
    def __init__(self, engine: Engine, sessions: sessionmaker[Session]) -> None:
        self._engine = engine
        self._sessions = sessions

    # --- gateway side -------------------------------------------------------------------
    def create(
        self,
        job_id: str,
        account_id: str,
        pool: str,
        spec: JobSpec,
        *,
        tier: str | None = None,
        priority: int | None = None,
        degraded: bool = False,
        status: JobStatus = JobStatus.QUEUED,
        webhook_url: str | None = None,
        client_id: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Record a queued (or deferred) job. Returns (job, created); an existing id
        returns that job. ``client_id``: the client's own id for it (unique per account).
        Core statements, not the ORM's unit of work: this and ``get`` are on every
        request's path (profiled: most of a busy gateway's database time)."""
        if status not in WAITING_STATUSES:
            raise ValueError(f"a job starts queued or deferred, not {status}")
        now = utcnow()
        values: dict[str, Any] = {
            "id": job_id,
            "account_id": account_id,
            "pool": pool,
            "model": spec.model,
            "status": status.value,
            "spec": dataclasses.asdict(spec),
            "step": 0,
            "attempts": 0,
            "preemptions": 0,
            "tier": tier,
            "priority": priority,
            "degraded": degraded,
            "webhook_url": webhook_url,
            "client_id": client_id,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(JobRow).values(**values))
        except IntegrityError:
            existing = self.get(job_id)
            if existing is None:  # an account vanished underneath us; not a duplicate
                raise
            return existing, False
        return job_record(SimpleNamespace(**_NO_PROGRESS, **values)), True

    def get(self, job_id: str) -> JobRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(_JOBS).where(JobRow.id == job_id)).first()
            if row is None:
                return None
            images = conn.execute(select(_IMAGES).where(ImageRow.job_id == job_id)).all()
        return job_record(row, images)

    def find(self, account_id: str, public_id: str) -> JobRecord | None:
        """``account_id``'s job that its owner calls ``public_id``: the one with that
        client id, else one without a client id whose row id it is. Another account's
        job is never found, whatever the id (one query, the owner in its condition)."""
        mine = and_(
            JobRow.account_id == account_id,
            or_(
                JobRow.client_id == public_id,
                and_(JobRow.client_id.is_(None), JobRow.id == public_id),
            ),
        )
        with self._engine.connect() as conn:
            rows = conn.execute(select(_JOBS).where(mine)).all()
            if not rows:
                return None
            # Both can match only if a client reused one of its own generated ids as a
            # client id; the client id names the job it chose it for.
            row = min(rows, key=lambda r: r.client_id is None)
            images = conn.execute(select(_IMAGES).where(ImageRow.job_id == row.id)).all()
        return job_record(row, images)

    def get_many(self, job_ids: Sequence[str]) -> dict[str, JobRecord]:
        """The jobs of ``job_ids`` that exist, with their images: two queries for all."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(_JOBS).where(JobRow.id.in_(job_ids))).all()
            images = conn.execute(select(_IMAGES).where(ImageRow.job_id.in_(job_ids))).all()
        by_job: dict[str, list[Any]] = {}
        for image in images:
            by_job.setdefault(image.job_id, []).append(image)
        return {row.id: job_record(row, by_job.get(row.id, ())) for row in rows}

    def states(self, job_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """(status, step) of each of ``job_ids`` that exists: what a watcher compares."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(JobRow.id, JobRow.status, JobRow.step).where(JobRow.id.in_(job_ids))
            ).all()
        return {job_id: (status, step) for job_id, status, step in rows}

    def get_image(self, image_id: str) -> ImageRecord | None:
        with self._sessions() as session:
            row = session.get(ImageRow, image_id)
            return image_record(row) if row is not None else None

    def waiting_before(
        self, cutoff: datetime, after: tuple[datetime, str] | None = None, limit: int = 200
    ) -> tuple[list[JobRecord], tuple[datetime, str] | None]:
        """One page of the queued and deferred jobs created before ``cutoff``, oldest
        first, from just past ``after``; and where the next page starts (None: this was
        the last). What the orphan reconciler walks (gateway/services/reconciler.py)."""
        query = select(_JOBS).where(JobRow.status.in_(_WAITING), JobRow.created_at < cutoff)
        if after is not None:
            created, job_id = after
            query = query.where(
                or_(
                    JobRow.created_at > created,
                    and_(JobRow.created_at == created, JobRow.id > job_id),
                )
            )
        query = query.order_by(JobRow.created_at, JobRow.id).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        # The row's own timestamp, not the record's float: a page boundary must be exact.
        following = (rows[-1].created_at, rows[-1].id) if len(rows) == limit else None
        return [job_record(row) for row in rows], following

    def watch(self, job_id: str, until: datetime) -> None:
        """Someone watches the job until ``until`` (its worker then shows previews)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status.not_in(_TERMINAL))
                .values(watched_until=until)
            )

    # --- moves through the lifecycle (store/job_states.py) -------------------------------
    @contextmanager
    def changes(self) -> Iterator[JobChanges]:
        """Several state changes in one transaction (a worker flushes a whole batch's)."""
        with self._engine.begin() as conn:
            yield JobChanges(conn, self._engine.dialect.name)

    def mark_running(self, job_id: str, total_steps: int, resumed_from_step: int | None) -> bool:
        with self.changes() as changes:
            return changes.mark_running(job_id, total_steps, resumed_from_step)

    def requeue(self, job_id: str, step: int, status: JobStatus = JobStatus.QUEUED) -> bool:
        with self.changes() as changes:
            return changes.requeue(job_id, step, status)

    def record_progress(self, job_id: str, step: int, preview_key: str | None) -> bool:
        with self.changes() as changes:
            return changes.record_progress(job_id, step, preview_key)

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        error: str | None = None,
        error_code: str | None = None,
    ) -> bool:
        with self.changes() as changes:
            return changes.finish(job_id, status, error, error_code)

    def cancel(self, job_id: str, reason: str) -> bool:
        """Its owner cancelled the job: written by the gateway at once, so the answer to
        the cancel shows it (the workflow's finalize writes it again, refused)."""
        return self.finish(job_id, JobStatus.CANCELLED, reason, ErrorCode.CANCELLED)

    def fail(self, job_id: str, reason: str) -> bool:
        """The job can never finish: its workflow is gone or cannot start (orphan sweep,
        or a wait that found its workflow closed). Ours to fix, so render_failed."""
        return self.finish(job_id, JobStatus.FAILED, reason, ErrorCode.RENDER_FAILED)

    def discard(self, job_id: str) -> None:
        """Forget a job that was never acknowledged (its workflow could not be started)."""
        with self._sessions.begin() as session:
            session.execute(delete(JobRow).where(JobRow.id == job_id, JobRow.status.in_(_WAITING)))

    def complete(self, job_id: str, images: Sequence[ImageRecord]) -> bool:
        with self.changes() as changes:
            return changes.complete(job_id, images)
