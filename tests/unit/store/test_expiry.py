"""The retention sweep's queries (store/expiry.py) on SQLite and PostgreSQL: finished jobs
only, oldest first, per tier, and never a job already marked."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from daguerre.domain import JobSpec, JobStatus
from daguerre.store import Store
from daguerre.store.tables import JobRow, utcnow

SPEC = JobSpec(prompt="p", model="builtin")


def _job(store: Store, job_id: str, tier: str, days_ago: float | None) -> None:
    """A job of ``tier`` that ended ``days_ago`` (None: still queued)."""
    account = store.accounts.create_account(job_id, tier, "api")
    store.jobs.create(job_id, account.id, "api", SPEC, tier=tier)
    if days_ago is not None:
        store.jobs.finish(job_id, JobStatus.FAILED, "for the test")
        ended = utcnow() - timedelta(days=days_ago)
        with store.db.begin() as conn:
            conn.execute(update(JobRow).where(JobRow.id == job_id).values(finished_at=ended))


def test_expiry_finds_finished_jobs_per_tier_oldest_first(store: Store) -> None:
    for job_id, tier, days in [
        ("free-40", "free", 40),
        ("free-35", "free", 35),
        ("free-1", "free", 1),
        ("pro-40", "pro", 40),
        ("free-waiting", "free", None),
    ]:
        _job(store, job_id, tier, days)
    month_ago = utcnow() - timedelta(days=30)
    expiry = store.expiry
    assert expiry.expiring("free", month_ago, 10) == ["free-40", "free-35"]
    assert expiry.expiring("free", month_ago, 1) == ["free-40"]
    assert expiry.expiring("pro", month_ago, 10) == ["pro-40"]
    assert expiry.unswept(utcnow(), 10) == ["free-40", "pro-40", "free-35", "free-1"]

    expiry.mark_expired(["free-40"], utcnow())
    assert expiry.expiring("free", month_ago, 10) == ["free-35"]
    assert "free-40" not in expiry.unswept(utcnow(), 10)  # expiry took its checkpoints
    expiry.mark_swept(["pro-40", "free-35"], utcnow())
    assert expiry.unswept(utcnow(), 10) == ["free-1"]
    assert expiry.expiring("pro", month_ago, 10) == ["pro-40"]  # swept is not expired
    job = store.jobs.get("free-40")
    assert job is not None and job.expired_at is not None
