"""The worker registry (store/workers.py), on SQLite and PostgreSQL (the store fixture)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect, update

from daguerre.store import Store
from daguerre.store.migrate import current_revision
from daguerre.store.tables import WorkerRow, utcnow
from daguerre.store.workers import WorkerReport, staleness_s


def worker(worker_id: str, pool: str = "api", **fields: object) -> WorkerReport:
    base: dict[str, object] = {"host": "gpu-1", "pid": 42, "slots": 10, "batch_images": 8}
    return WorkerReport(id=worker_id, pool=pool, **{**base, **fields})  # type: ignore[arg-type]


def age(store: Store, worker_id: str, seconds: float) -> None:
    """Make ``worker_id``'s last report ``seconds`` old."""
    with store.db.begin() as conn:
        conn.execute(
            update(WorkerRow)
            .where(WorkerRow.id == worker_id)
            .values(updated_at=utcnow() - timedelta(seconds=seconds))
        )


def test_the_migration_makes_the_table(store: Store) -> None:
    columns = {c["name"] for c in inspect(store.db).get_columns("workers")}
    assert {"id", "pool", "host", "slots", "batch_images", "running", "images_per_s"} <= columns
    assert {"step_s", "updated_at", "started_at", "pid"} <= columns
    assert (current_revision(store.db) or "") >= "0007"


def test_a_report_is_listed_and_a_later_one_replaces_it(store: Store) -> None:
    store.workers.report(worker("w1"))
    [first] = store.workers.live("api")
    assert (first.host, first.slots, first.batch_images, first.running) == ("gpu-1", 10, 8, 0)
    assert first.images_per_s is None and first.updated_at is not None
    store.workers.report(worker("w1", running=5, step_s=0.25, images_per_s=3.5))
    [again] = store.workers.live("api")
    assert (again.running, again.step_s, again.images_per_s) == (5, 0.25, 3.5)
    assert again.started_at == first.started_at  # the same process, refreshed
    assert again.updated_at is not None and again.updated_at >= first.updated_at


def test_live_lists_a_pool_or_every_pool_and_skips_stale_reports(store: Store) -> None:
    store.workers.report(worker("a1", "api"))
    store.workers.report(worker("a2", "api"))
    store.workers.report(worker("c1", "chat"))
    age(store, "a2", staleness_s(5.0) + 1)  # silent for more than three intervals
    assert [w.id for w in store.workers.live("api", staleness_s(5.0))] == ["a1"]
    assert [w.id for w in store.workers.live(None, staleness_s(5.0))] == ["a1", "c1"]
    assert [w.id for w in store.workers.live("api", 3600)] == ["a1", "a2"]
    assert store.workers.live("nope") == []


def test_forget_and_prune_remove_rows(store: Store) -> None:
    store.workers.report(worker("gone"))
    store.workers.report(worker("dead"))
    store.workers.report(worker("alive"))
    store.workers.forget("gone")
    store.workers.forget("never-was")  # no error
    age(store, "dead", 7200)
    assert store.workers.prune(3600) == 1
    assert [w.id for w in store.workers.live(None, 10**6)] == ["alive"]
