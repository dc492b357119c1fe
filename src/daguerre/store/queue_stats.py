"""The queue's read models: what admission, the metrics and a job's queue position read.

Counts and aggregates over the jobs table, never a write: kept apart from the job
repository (store/jobs.py), whose one concern is a job's lifecycle. Admission reads
the backlog per priority key and the throughput (gateway/access/admission.py), the metrics the
queue depth (gateway/metrics.py), and a waiting job's description its place in line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from daguerre.domain import WAITING_STATUSES, JobRecord, JobStatus
from daguerre.priority import DEFERRED
from daguerre.store.tables import JobRow

_WAITING = [s.value for s in WAITING_STATUSES]

# Waiting jobs per (pool, priority key, status).
Depth = dict[tuple[str, int | None, str], int]


class QueueStats:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def queue_position(self, job: JobRecord) -> int:
        """How many waiting jobs of the same pool run before this one: those at a
        higher priority (a smaller key), and those at its own that arrived earlier."""
        created = datetime.fromtimestamp(job.created_at, UTC)
        earlier = or_(
            JobRow.created_at < created,
            and_(JobRow.created_at == created, JobRow.id < job.id),
        )
        ahead: Any = earlier
        if job.priority is not None:
            ahead = or_(
                JobRow.priority < job.priority,
                and_(or_(JobRow.priority.is_(None), JobRow.priority == job.priority), earlier),
            )
        with self._sessions() as session:
            count = session.scalar(
                select(func.count())
                .select_from(JobRow)
                .where(JobRow.pool == job.pool, JobRow.status.in_(_WAITING), ahead)
            )
        return int(count or 0)

    def backlog(self, pool: str) -> int:
        """Waiting (queued and deferred) jobs of the pool."""
        with self._sessions() as session:
            count = session.scalar(
                select(func.count())
                .select_from(JobRow)
                .where(JobRow.pool == pool, JobRow.status.in_(_WAITING))
            )
        return int(count or 0)

    def backlog_by_priority(self, pool: str) -> dict[int | None, int]:
        """Waiting jobs of the pool, counted per priority key (one query: the admission
        snapshot every answer of a busy gateway reads from)."""
        with self._sessions() as session:
            rows = session.execute(
                select(JobRow.priority, func.count())
                .where(JobRow.pool == pool, JobRow.status.in_(_WAITING))
                .group_by(JobRow.priority)
            ).all()
        return {priority: int(count) for priority, count in rows}

    def running_count(self, pool: str) -> int:
        with self._sessions() as session:
            count = session.scalar(
                select(func.count())
                .select_from(JobRow)
                .where(JobRow.pool == pool, JobRow.status == JobStatus.RUNNING.value)
            )
        return int(count or 0)

    def finished_since(self, pool: str, since: datetime) -> tuple[int, datetime | None]:
        """How many jobs of the pool finished (any outcome) at or after ``since``, and
        when the first of them did."""
        with self._sessions() as session:
            count, oldest = session.execute(
                select(func.count(), func.min(JobRow.finished_at)).where(
                    JobRow.pool == pool, JobRow.finished_at >= since
                )
            ).one()
        if isinstance(oldest, str):  # SQLite hands an aggregate back as text
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return int(count or 0), oldest

    def depth(self) -> Depth:
        """Waiting jobs of every pool, per (pool, priority key, status): the queue-depth
        gauges, in one query."""
        with self._sessions() as session:
            rows = session.execute(
                select(JobRow.pool, JobRow.priority, JobRow.status, func.count())
                .where(JobRow.status.in_(_WAITING))
                .group_by(JobRow.pool, JobRow.priority, JobRow.status)
            ).all()
        return {(pool, priority, status): int(n) for pool, priority, status, n in rows}

    def recent_render_seconds(self, pool: str, sample: int = 20) -> float | None:
        """Mean start-to-finish time of the pool's latest successful renders."""
        with self._sessions() as session:
            rows = session.execute(
                select(JobRow.started_at, JobRow.finished_at)
                .where(
                    JobRow.pool == pool,
                    JobRow.status == JobStatus.SUCCEEDED.value,
                    JobRow.started_at.is_not(None),
                    JobRow.finished_at.is_not(None),
                )
                .order_by(JobRow.finished_at.desc())
                .limit(sample)
            ).all()
        spans = [(f - s).total_seconds() for s, f in rows if s is not None and f is not None]
        return sum(spans) / len(spans) if spans else None

    def deferrals_by_tier(self, since: datetime) -> dict[str, tuple[int, int]]:
        """Per tier: the jobs deferred (accepted past the wait budget) since ``since``,
        and the deferred jobs waiting now, across every gateway (read from the jobs)."""
        deferred = JobRow.priority >= DEFERRED
        recent = func.sum(case((JobRow.created_at >= since, 1), else_=0))
        waiting = func.sum(case((JobRow.status == JobStatus.DEFERRED.value, 1), else_=0))
        with self._sessions() as session:
            rows = session.execute(
                select(JobRow.tier, recent, waiting)
                .where(deferred, or_(JobRow.created_at >= since, JobRow.status.in_(_WAITING)))
                .group_by(JobRow.tier)
            ).all()
        return {tier or "unknown": (int(r or 0), int(w or 0)) for tier, r, w in rows}
