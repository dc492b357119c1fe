"""The database-backed progress feed, as the SSE endpoint and the images API use it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import event

from daguerre.blob_layout import preview_key
from daguerre.domain import JobSpec, JobStatus
from daguerre.progress.polling import PollingProgressFeed
from daguerre.store import Store


def publish(store: Store, job_id: str, step: int, png: bytes) -> None:
    """What a worker does for a watched job's step: the preview, then the row."""
    store.blobs.put(preview_key(job_id), png)
    store.jobs.record_progress(job_id, step, preview_key(job_id))


async def test_watch_and_wait(store: Store) -> None:
    account = store.accounts.create_account("a", "free", "chat")
    store.jobs.create("j", account.id, "chat", JobSpec(prompt="p", model="builtin"))
    feed = PollingProgressFeed(store, interval_s=0.01)

    async def worker() -> None:
        await asyncio.sleep(0.05)
        await anyio.to_thread.run_sync(store.jobs.mark_running, "j", 3, None)
        for step in (1, 2, 3):
            await asyncio.sleep(0.05)
            await anyio.to_thread.run_sync(publish, store, "j", step, b"png%d" % step)
        await asyncio.sleep(0.05)
        await anyio.to_thread.run_sync(store.jobs.complete, "j", [])

    task = asyncio.create_task(worker())
    events = [e async for e in feed.watch("j")]
    await task
    kinds = [e.kind for e in events]
    assert kinds[0] == "state" and events[0].job.status is JobStatus.QUEUED
    assert kinds[-1] == "completed"
    progress = [e for e in events if e.kind == "progress"]
    assert [e.job.step for e in progress if e.job.step] == [1, 2, 3]
    assert progress[-1].preview_png == b"png3"
    done = await feed.wait("j")
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert await feed.wait("missing") is None
    assert [e async for e in feed.watch("missing")] == []


async def test_a_watch_tells_the_worker_to_render_previews(store: Store) -> None:
    account = store.accounts.create_account("a", "free", "chat")
    store.jobs.create("w", account.id, "chat", JobSpec(prompt="p", model="builtin"))
    with store.jobs.changes() as changes:
        assert changes.check(["w"]) == (set(), set())  # nobody watches yet
    feed = PollingProgressFeed(store, interval_s=0.01)
    watching = feed.watch("w")
    first = await anext(watching)
    assert first.kind == "state"
    with store.jobs.changes() as changes:
        assert changes.check(["w"]) == (set(), {"w"})
    row = store.jobs.get("w")
    assert row is not None
    store.jobs.finish("w", JobStatus.CANCELLED, "by owner")
    assert [e.kind async for e in watching] == ["cancelled"]
    with store.jobs.changes() as changes:
        assert changes.check(["w", "gone"]) == ({"w", "gone"}, set())
    assert datetime.now(UTC) < datetime.now(UTC).replace(year=3000)


async def test_many_waiters_share_one_query_per_tick(store: Store) -> None:
    """Forty jobs waited on at once cost one status query per tick, not forty."""
    account = store.accounts.create_account("a", "free", "api")
    ids = [f"m{i}" for i in range(40)]
    for job_id in ids:
        store.jobs.create(job_id, account.id, "api", JobSpec(prompt="p", model="builtin"))
    feed = PollingProgressFeed(store, interval_s=0.02)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    waits = [asyncio.create_task(feed.wait(job_id)) for job_id in ids]
    await asyncio.sleep(0.1)  # every waiter has read its row once
    event.listen(store.db, "before_cursor_execute", count)
    try:
        await asyncio.sleep(0.3)  # about 15 ticks with nothing changing
        polls = len(statements)
        for job_id in ids:
            store.jobs.finish(job_id, JobStatus.FAILED, "no")
        done = await asyncio.gather(*waits)
    finally:
        event.remove(store.db, "before_cursor_execute", count)
    assert all(job is not None and job.status is JobStatus.FAILED for job in done)
    assert 5 <= polls <= 25  # one query a tick, whatever the number of waiters
