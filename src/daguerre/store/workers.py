"""The worker registry: every worker process, on whatever host, reports what it can run
and how fast it renders, every few seconds (workers/registration.py); admission and the
operators read the workers that reported recently (gateway/access/capacity.py).

A worker removes its row when it stops cleanly. One that dies keeps its row, which stops
counting once it is older than the staleness window the reader gives (``max_age_s``), and
is deleted by ``prune`` later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from daguerre.store.tables import WorkerRow, utcnow


@dataclass(frozen=True)
class WorkerReport:
    """One worker process as it reports itself."""

    id: str  # host:pid:random, unique per process start
    pool: str
    host: str
    pid: int
    slots: int  # renders it takes at once per job queue
    batch_images: int  # images its engine steps together at most
    running: int = 0  # renders in its engine's running set now
    step_s: float | None = None  # seconds per batched step, measured; None: no render yet
    images_per_s: float | None = None  # its measured pace at a full batch
    started_at: datetime | None = None
    updated_at: datetime | None = None  # when it last reported (set by ``report``)


# A report older than this many report intervals belongs to a worker that is gone.
STALE_REPORTS = 3


def staleness_s(report_s: float) -> float:
    """How old a report may be and still count, for workers reporting every ``report_s``."""
    return STALE_REPORTS * report_s


_FIELDS = ("pool", "host", "pid", "slots", "batch_images", "running", "step_s", "images_per_s")


class WorkerRegistry:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def report(self, worker: WorkerReport) -> None:
        """Insert or refresh ``worker``'s row, stamped now."""
        now = utcnow()
        values = {name: getattr(worker, name) for name in _FIELDS}
        with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = insert(WorkerRow).values(
                id=worker.id, started_at=worker.started_at or now, updated_at=now, **values
            )
            changed = {name: stmt.excluded[name] for name in (*_FIELDS, "updated_at")}
            session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=changed))

    def live(self, pool: str | None = None, max_age_s: float = 15.0) -> list[WorkerReport]:
        """The workers (of ``pool``, or of every pool) that reported in the last
        ``max_age_s`` seconds, by pool and id."""
        since = utcnow() - timedelta(seconds=max_age_s)
        query = select(WorkerRow).where(WorkerRow.updated_at >= since)
        if pool is not None:
            query = query.where(WorkerRow.pool == pool)
        with self._sessions() as session:
            rows = session.scalars(query.order_by(WorkerRow.pool, WorkerRow.id)).all()
            return [_report(row) for row in rows]

    def forget(self, worker_id: str) -> None:
        """Remove a worker's row (it stops cleanly)."""
        with self._sessions.begin() as session:
            session.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))

    def prune(self, max_age_s: float) -> int:
        """Delete the rows of workers silent for ``max_age_s`` seconds (they died without
        saying so); how many."""
        since = utcnow() - timedelta(seconds=max_age_s)
        with self._sessions.begin() as session:
            result = session.execute(delete(WorkerRow).where(WorkerRow.updated_at < since))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _report(row: WorkerRow) -> WorkerReport:
    return WorkerReport(
        id=row.id,
        started_at=row.started_at,
        updated_at=row.updated_at,
        **{name: getattr(row, name) for name in _FIELDS},
    )
