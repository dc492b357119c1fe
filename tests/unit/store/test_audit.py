"""The operators' audit log and the per-tier deferral counts, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from daguerre.domain import JobSpec, JobStatus
from daguerre.priority import DEFERRED
from daguerre.store import Store
from daguerre.store.tables import utcnow


def test_the_audit_log_keeps_who_what_and_when_newest_first(store: Store) -> None:
    before = utcnow().timestamp()
    first = store.audit.record("admin-key", "PATCH /admin/tiers/free", {"requests": "1/minute"})
    store.audit.record("acct_ops", "PUT /admin/pools/chat/degraded", {"mode": "on"})
    store.audit.record("acct_ops", "DELETE /admin/tiers/free")
    entries = store.audit.list()
    assert [e.action for e in entries] == [
        "DELETE /admin/tiers/free",
        "PUT /admin/pools/chat/degraded",
        "PATCH /admin/tiers/free",
    ]
    assert entries[-1] == first
    assert (first.actor, first.change) == ("admin-key", {"requests": "1/minute"})
    assert entries[0].change is None  # a reset sends nothing
    assert before - 1 <= first.created_at <= utcnow().timestamp() + 1
    assert [e.action for e in store.audit.list(limit=1)] == ["DELETE /admin/tiers/free"]


def test_deferrals_by_tier_counts_recent_and_waiting_deferred_jobs(store: Store) -> None:
    owner = store.accounts.create_account("free", "free", "chat").id
    spec = JobSpec(prompt="x", model="builtin")
    for i in range(3):  # deferred, waiting
        store.jobs.create(
            f"d{i}",
            owner,
            "chat",
            spec,
            tier="free",
            priority=DEFERRED,
            status=JobStatus.DEFERRED,
        )
    store.jobs.create("q", owner, "chat", spec, tier="free", priority=3)  # queued: not deferred
    store.jobs.mark_running("d0", 4, None)  # deferred, now running: recent, not waiting
    counts = store.queue_stats.deferrals_by_tier(utcnow() - timedelta(minutes=5))
    assert counts == {"free": (3, 2)}
    later = store.queue_stats.deferrals_by_tier(utcnow() + timedelta(minutes=1))
    assert later == {"free": (0, 2)}  # none deferred since; two still wait
