"""Which finished jobs the retention sweep still has work on, and the marks it leaves.

Two kinds of work, both keyed by the job row so that they cost the same on a local
folder and on an object store (no listing of blobs by age):

- **leftovers**: a finished job's checkpoints, which its last attempt usually deletes but
  a worker that died (or another host's attempt) may have left behind;
- **expiry**: past its tier's retention, a job's images, uploads and previews.

A job is marked once its blobs are gone (``swept_at``, ``expired_at``), so a sweep never
walks the same rows again. Several gateways may sweep at once: deleting twice is harmless
and the marks are plain updates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from daguerre.domain import TERMINAL_STATUSES
from daguerre.store.tables import JobRow

_TERMINAL = [s.value for s in TERMINAL_STATUSES]


class JobExpiry:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def unswept(self, finished_before: datetime, limit: int) -> list[str]:
        """Jobs that ended before ``finished_before`` whose leftovers were not swept yet,
        oldest first."""
        return self._oldest(finished_before, limit, JobRow.swept_at.is_(None))

    def expiring(self, tier: str, finished_before: datetime, limit: int) -> list[str]:
        """Jobs of ``tier`` that ended before ``finished_before`` and still hold their
        images, oldest first."""
        return self._oldest(
            finished_before, limit, JobRow.tier == tier, JobRow.expired_at.is_(None)
        )

    def _oldest(self, finished_before: datetime, limit: int, *where: Any) -> list[str]:
        query = (
            select(JobRow.id)
            .where(JobRow.status.in_(_TERMINAL), JobRow.finished_at < finished_before, *where)
            .order_by(JobRow.finished_at)
            .limit(limit)
        )
        with self._sessions() as session:
            return list(session.scalars(query))

    def mark_swept(self, job_ids: list[str], at: datetime) -> None:
        self._mark(job_ids, swept_at=at)

    def mark_expired(self, job_ids: list[str], at: datetime) -> None:
        # Expiry deletes the checkpoints too: nothing is left to sweep.
        self._mark(job_ids, expired_at=at, swept_at=at)

    def _mark(self, job_ids: list[str], **values: datetime) -> None:
        if not job_ids:
            return
        with self._sessions.begin() as session:
            session.execute(update(JobRow).where(JobRow.id.in_(job_ids)).values(**values))
