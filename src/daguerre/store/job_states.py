"""A job's lifecycle as one table of allowed moves, and the only code that writes it.

Every status a job row takes after its insert is written by ``JobChanges.move``: one
conditional UPDATE, ``... WHERE id = :id AND status IN (the statuses it may come
from)``, that starts its transaction, so that writers never race a stale read (and
SQLite never has to upgrade a read lock). A move the table does not allow is not
written, and the caller is told (False): a late retry, a cancel, an orphan sweep and a
failure path can all write without checking each other first, and the terminal
statuses are sticky because the table leads nowhere from them.

Who moves a job, and why (see ``MOVES``):

- waiting -> running: a worker starts its render (the first attempt, or a retry);
- running -> running: a retried attempt restarts it, or a paused render resumes;
- running -> queued or deferred: it paused for higher-priority work (preemption) and
  waits again, as its priority says;
- waiting or running -> succeeded: the worker stored its images (a job may complete
  without a recorded start: the start's note is not waited for);
- waiting or running -> failed: every attempt failed (the worker's finalize), or the
  gateway found it orphaned or its workflow closed without finishing it;
- waiting or running -> cancelled: its owner asked (the gateway writes it at once, the
  workflow's finalize again).

A step and its preview are written within a status, not as a move: they apply only
while the job is running, and say so the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from daguerre.domain import TERMINAL_STATUSES, WAITING_STATUSES, ImageRecord, JobStatus
from daguerre.store.tables import ImageRow, JobRow, UTCDateTime, utcnow

_RUNNING = frozenset({JobStatus.RUNNING})
_STARTED = WAITING_STATUSES | _RUNNING  # not finished: where any outcome may come from

# From each status, the statuses a job may move to. Nothing leaves a terminal status.
MOVES: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: _RUNNING | TERMINAL_STATUSES,
    JobStatus.DEFERRED: _RUNNING | TERMINAL_STATUSES,
    JobStatus.RUNNING: _STARTED | TERMINAL_STATUSES,
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def allowed_from(to: JobStatus) -> frozenset[JobStatus]:
    """The statuses a job may move to ``to`` from."""
    return frozenset(source for source, targets in MOVES.items() if to in targets)


# The WHERE of each move, computed once: the column holds the enum's text.
_SOURCES = {to: sorted(s.value for s in allowed_from(to)) for to in JobStatus}
_TERMINAL = [s.value for s in TERMINAL_STATUSES]


class JobChanges:
    """State changes of job rows on one connection, inside one transaction (a worker
    flushes a whole batch's at once). Each says whether it applied."""

    def __init__(self, conn: Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def _update(self, job_id: str, *conditions: Any, **values: Any) -> bool:
        values.setdefault("updated_at", utcnow())
        result = self._conn.execute(
            update(JobRow).where(JobRow.id == job_id, *conditions).values(**values)
        )
        return bool(getattr(result, "rowcount", 0))

    def move(self, job_id: str, to: JobStatus, **values: Any) -> bool:
        """Move the job to ``to`` (writing ``values`` with it) if the table allows it
        from the status it is in; False, and nothing written, if not (or no such job)."""
        return self._update(job_id, JobRow.status.in_(_SOURCES[to]), status=to.value, **values)

    def mark_running(self, job_id: str, total_steps: int, resumed_from_step: int | None) -> bool:
        """Start (or restart: one more attempt) a render. False if the job has already
        finished. Attempts are counted here, not taken from Temporal: a render that is a
        local activity starts again at attempt 1 when its workflow task changes worker."""
        now = utcnow()
        return self.move(
            job_id,
            JobStatus.RUNNING,
            attempts=JobRow.attempts + 1,
            total_steps=total_steps,
            resumed_from_step=resumed_from_step,
            step=resumed_from_step or 0,
            started_at=func.coalesce(JobRow.started_at, literal(now, UTCDateTime())),
        )

    def resume_running(self, job_id: str, step: int) -> bool:
        """A paused render runs again from ``step``. False if the job has finished."""
        return self.move(job_id, JobStatus.RUNNING, step=step, resumed_from_step=step)

    def requeue(self, job_id: str, step: int, status: JobStatus = JobStatus.QUEUED) -> bool:
        """A running render paused at ``step`` for higher-priority work (preemption): the
        job waits again, keeping its progress. False if it is no longer running."""
        if status not in WAITING_STATUSES:
            raise ValueError(f"a job waits as queued or deferred, not {status}")
        return self.move(job_id, status, step=step, preemptions=JobRow.preemptions + 1)

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
        return self.move(job_id, status, error=error, error_code=error_code, finished_at=utcnow())

    def complete(self, job_id: str, images: Sequence[ImageRecord]) -> bool:
        """Store the images (upsert by job and index) and mark the job succeeded."""
        now = utcnow()
        if not self.move(
            job_id,
            JobStatus.SUCCEEDED,
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

    def record_progress(self, job_id: str, step: int, preview_key: str | None) -> bool:
        """Note a finished step (within the running status, not a move). False means the
        job stopped running (e.g. was cancelled)."""
        values: dict[str, Any] = {"step": step}
        if preview_key is not None:
            values["preview_key"] = preview_key
        return self._update(job_id, JobRow.status == JobStatus.RUNNING.value, **values)

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
