"""The jobs and images tables, as the gateway and the workers use them.

Every state change is one conditional UPDATE that starts its transaction, so writers
never race a stale read (and SQLite never has to upgrade a read lock). A terminal
status is sticky: a late retry, a cancel and a failure path can all write without
checking each other first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from daguerre.domain import (
    TERMINAL_STATUSES,
    ImageRecord,
    JobRecord,
    JobSpec,
    JobStatus,
)
from daguerre.store.tables import ImageRow, JobRow, UTCDateTime, utcnow

_TERMINAL = [s.value for s in TERMINAL_STATUSES]
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
}


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _image(row: Any) -> ImageRecord:
    """An image row (ORM object or Core row: both have the columns as attributes)."""
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
    )


def _job(row: Any, images: Sequence[Any] = ()) -> JobRecord:
    """A job row (ORM object or Core row) and its images as a record."""
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
        started_at=_ts(row.started_at),
        finished_at=_ts(row.finished_at),
        images=[_image(i) for i in sorted(images, key=lambda i: i.index)],
        tier=row.tier,
        priority=row.priority,
        degraded=bool(row.degraded),
        webhook_url=row.webhook_url,
        client_id=row.client_id,
    )


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
        return _job(SimpleNamespace(**_NO_PROGRESS, **values)), True

    def get(self, job_id: str) -> JobRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(_JOBS).where(JobRow.id == job_id)).first()
            if row is None:
                return None
            images = conn.execute(select(_IMAGES).where(ImageRow.job_id == job_id)).all()
        return _job(row, images)

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
        return _job(row, images)

    def get_many(self, job_ids: Sequence[str]) -> dict[str, JobRecord]:
        """The jobs of ``job_ids`` that exist, with their images: two queries for all."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(_JOBS).where(JobRow.id.in_(job_ids))).all()
            images = conn.execute(select(_IMAGES).where(ImageRow.job_id.in_(job_ids))).all()
        by_job: dict[str, list[Any]] = {}
        for image in images:
            by_job.setdefault(image.job_id, []).append(image)
        return {row.id: _job(row, by_job.get(row.id, ())) for row in rows}

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
            return _image(row) if row is not None else None

    def waiting_before(
        self, cutoff: datetime, after: tuple[datetime, str] | None = None, limit: int = 200
    ) -> tuple[list[JobRecord], tuple[datetime, str] | None]:
        """One page of the queued and deferred jobs created before ``cutoff``, oldest
        first, from just past ``after``; and where the next page starts (None: this was
        the last). What the orphan reconciler walks (gateway/reconciler.py)."""
        waiting = [JobStatus.QUEUED.value, JobStatus.DEFERRED.value]
        query = select(_JOBS).where(JobRow.status.in_(waiting), JobRow.created_at < cutoff)
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
        return [_job(row) for row in rows], following

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
        waiting = [JobStatus.QUEUED.value, JobStatus.DEFERRED.value]
        with self._sessions() as session:
            count = session.scalar(
                select(func.count())
                .select_from(JobRow)
                .where(JobRow.pool == job.pool, JobRow.status.in_(waiting), ahead)
            )
        return int(count or 0)

    def backlog(self, pool: str) -> int:
        """Queued and deferred jobs of the pool."""
        waiting = [JobStatus.QUEUED.value, JobStatus.DEFERRED.value]
        with self._sessions() as session:
            count = session.scalar(
                select(func.count())
                .select_from(JobRow)
                .where(JobRow.pool == pool, JobRow.status.in_(waiting))
            )
        return int(count or 0)

    def backlog_by_priority(self, pool: str) -> dict[int | None, int]:
        """Queued and deferred jobs of the pool, counted per priority key (one query:
        the admission snapshot every answer of a busy gateway reads from)."""
        waiting = [JobStatus.QUEUED.value, JobStatus.DEFERRED.value]
        with self._sessions() as session:
            rows = session.execute(
                select(JobRow.priority, func.count())
                .where(JobRow.pool == pool, JobRow.status.in_(waiting))
                .group_by(JobRow.priority)
            ).all()
        return {priority: int(count) for priority, count in rows}

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

    def finished_between(
        self, since: datetime, until: datetime
    ) -> list[tuple[str | None, str, float, float | None, float | None, int]]:
        """(tier, pool, created, started, finished, preemptions) of jobs that finished in
        [since, until), for the wait and render histograms."""
        with self._sessions() as session:
            rows = session.execute(
                select(
                    JobRow.tier,
                    JobRow.pool,
                    JobRow.created_at,
                    JobRow.started_at,
                    JobRow.finished_at,
                    JobRow.preemptions,
                ).where(JobRow.finished_at >= since, JobRow.finished_at < until)
            ).all()
        return [(t, p, c.timestamp(), _ts(s), _ts(f), n or 0) for t, p, c, s, f, n in rows]

    def running_count(self, pool: str) -> int:
        with self._sessions() as session:
            count = session.scalar(
                select(func.count())
                .select_from(JobRow)
                .where(JobRow.pool == pool, JobRow.status == JobStatus.RUNNING.value)
            )
        return int(count or 0)

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

    def watch(self, job_id: str, until: datetime) -> None:
        """Someone watches the job until ``until`` (its worker then shows previews)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status.not_in(_TERMINAL))
                .values(watched_until=until)
            )

    # --- state changes (worker side, plus cancel and fail) ------------------------------
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

    def discard(self, job_id: str) -> None:
        """Forget a job that was never acknowledged (its workflow could not be started)."""
        waiting = [JobStatus.QUEUED.value, JobStatus.DEFERRED.value]
        with self._sessions.begin() as session:
            session.execute(delete(JobRow).where(JobRow.id == job_id, JobRow.status.in_(waiting)))

    def complete(self, job_id: str, images: Sequence[ImageRecord]) -> bool:
        with self.changes() as changes:
            return changes.complete(job_id, images)


class JobChanges:
    """State changes of job rows on one connection, inside one transaction. Each is one
    conditional UPDATE and says whether it applied: a terminal status is sticky, so a
    late retry, a cancel and a failure path can all write without checking first."""

    def __init__(self, conn: Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def _update(self, job_id: str, *conditions: Any, **values: Any) -> bool:
        values.setdefault("updated_at", utcnow())
        result = self._conn.execute(
            update(JobRow).where(JobRow.id == job_id, *conditions).values(**values)
        )
        return bool(getattr(result, "rowcount", 0))

    def mark_running(self, job_id: str, total_steps: int, resumed_from_step: int | None) -> bool:
        """Start (or restart: one more attempt) a render. False if the job has already
        finished. Attempts are counted here, not taken from Temporal: a render that is a
        local activity starts again at attempt 1 when its workflow task changes worker."""
        now = utcnow()
        return self._update(
            job_id,
            JobRow.status.not_in(_TERMINAL),
            status=JobStatus.RUNNING.value,
            attempts=JobRow.attempts + 1,
            total_steps=total_steps,
            resumed_from_step=resumed_from_step,
            step=resumed_from_step or 0,
            started_at=func.coalesce(JobRow.started_at, literal(now, UTCDateTime())),
        )

    def resume_running(self, job_id: str, step: int) -> bool:
        """A paused render runs again from ``step``. False if the job has finished."""
        return self._update(
            job_id,
            JobRow.status.not_in(_TERMINAL),
            status=JobStatus.RUNNING.value,
            step=step,
            resumed_from_step=step,
        )

    def requeue(self, job_id: str, step: int, status: JobStatus = JobStatus.QUEUED) -> bool:
        """A running render paused at ``step`` for higher-priority work (preemption): the
        job waits again, keeping its progress. False if it is no longer running."""
        if status not in (JobStatus.QUEUED, JobStatus.DEFERRED):
            raise ValueError(f"a job waits as queued or deferred, not {status}")
        return self._update(
            job_id,
            JobRow.status == JobStatus.RUNNING.value,
            status=status.value,
            step=step,
            preemptions=JobRow.preemptions + 1,
        )

    def record_progress(self, job_id: str, step: int, preview_key: str | None) -> bool:
        """Note a finished step. False means the job stopped running (e.g. was cancelled)."""
        values: dict[str, Any] = {"step": step}
        if preview_key is not None:
            values["preview_key"] = preview_key
        return self._update(job_id, JobRow.status == JobStatus.RUNNING.value, **values)

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        error: str | None = None,
        error_code: str | None = None,
    ) -> bool:
        """Move a job to a terminal status unless it is already in one."""
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"{status} is not a terminal status")
        return self._update(
            job_id,
            JobRow.status.not_in(_TERMINAL),
            status=status.value,
            error=error,
            error_code=error_code,
            finished_at=utcnow(),
        )

    def complete(self, job_id: str, images: Sequence[ImageRecord]) -> bool:
        """Store the images (upsert by job and index) and mark the job succeeded."""
        now = utcnow()
        if not self._update(
            job_id,
            JobRow.status.not_in(_TERMINAL),
            status=JobStatus.SUCCEEDED.value,
            # A job completed without a recorded start keeps its step.
            step=func.coalesce(JobRow.total_steps, JobRow.step),
            finished_at=now,
            updated_at=now,
            error=None,
        ):
            return False
        for image in images:
            self._conn.execute(self._upsert_image(image, now))
        return True

    def check(self, job_ids: Sequence[str]) -> tuple[set[str], set[str]]:
        """Of ``job_ids``: which are finished (or gone), renders a worker should drop;
        and which someone watches now, renders that should show previews."""
        if not job_ids:
            return set(), set()
        found = self._conn.execute(
            select(JobRow.id, JobRow.status, JobRow.watched_until).where(JobRow.id.in_(job_ids))
        ).all()
        now = utcnow()
        live = {job_id for job_id, status, _ in found if status not in _TERMINAL}
        watched = {job_id for job_id, _, until in found if until is not None and until > now}
        return set(job_ids) - live, watched & live

    def _upsert_image(self, image: ImageRecord, now: datetime) -> Any:
        values = dataclasses.asdict(image)
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        stmt = insert(ImageRow).values(**values, created_at=now)
        changing = {k: stmt.excluded[k] for k in values if k not in ("job_id", "index")}
        return stmt.on_conflict_do_update(index_elements=["job_id", "index"], set_=changing)
