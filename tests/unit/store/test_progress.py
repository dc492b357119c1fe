"""The database-backed progress feed, as the SSE endpoint and the images API use it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio

from daguerre.config import Settings
from daguerre.domain import JobSpec, JobStatus
from daguerre.store import open_store
from daguerre.store.progress import DatabaseProgressSink, PollingProgressFeed


async def test_watch_and_wait(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path))
    account = store.accounts.create_account("a", "free", "chat")
    store.jobs.create("j", account.id, "chat", JobSpec(prompt="p", model="builtin"))
    feed = PollingProgressFeed(store.jobs, store.blobs, interval_s=0.01)
    sink = DatabaseProgressSink(store.jobs, store.blobs)

    async def worker() -> None:
        await asyncio.sleep(0.05)
        await anyio.to_thread.run_sync(store.jobs.mark_running, "j", 1, 3, None)
        for step in (1, 2, 3):
            await asyncio.sleep(0.05)
            await anyio.to_thread.run_sync(sink.publish, "j", step, b"png%d" % step)
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
    store.close()
