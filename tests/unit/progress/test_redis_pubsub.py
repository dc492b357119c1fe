"""Progress through Redis pub/sub, with the real Redis at DAGUERRE_TEST_REDIS_URL
(default redis://127.0.0.1:6379/15); skipped when none answers.

The fallback poll is set far longer than the test, so every progress event a watcher
sees here came through Redis, not through a timer."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import anyio
import pytest
import redis

from daguerre.blob_layout import preview_key
from daguerre.config import Settings
from daguerre.domain import JobSpec, JobStatus
from daguerre.progress import announcer, progress_feed
from daguerre.progress.redis_pubsub import RedisAnnouncer, RedisProgressFeed
from daguerre.store import Store

REDIS_URL = os.environ.get("DAGUERRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="module")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as err:
        pytest.skip(f"no Redis at {REDIS_URL}: {err}")
    return REDIS_URL


async def test_events_arrive_through_redis(store: Store, redis_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, redis_url=redis_url, redis_fallback_poll_s=30)
    announce = announcer(settings)
    feed = progress_feed(settings, store)
    assert isinstance(announce, RedisAnnouncer) and isinstance(feed, RedisProgressFeed)
    account = store.accounts.create_account("a", "free", "chat")
    store.jobs.create("j", account.id, "chat", JobSpec(prompt="p", model="builtin"))
    store.jobs.mark_running("j", 3, None)

    def publish(step: int) -> None:  # what a worker's batched writer does for a step
        store.blobs.put(preview_key("j"), b"png%d" % step)
        store.jobs.record_progress("j", step, preview_key("j"))
        announce({"j"})

    publish(1)  # before anyone watches: a late watcher still sees it

    async def worker() -> None:
        await asyncio.sleep(0.3)
        for step in (2, 3):
            await anyio.to_thread.run_sync(publish, step)
            await asyncio.sleep(0.1)
        await anyio.to_thread.run_sync(store.jobs.complete, "j", [])
        await anyio.to_thread.run_sync(announce, {"j"})

    task = asyncio.create_task(worker())
    async with asyncio.timeout(10):  # far below the 30 s fallback poll
        events = [e async for e in feed.watch("j")]
    await task
    assert events[0].kind == "state" and events[0].job.step == 1
    assert events[0].preview_png == b"png1"
    progress = [e for e in events if e.kind == "progress"]
    assert [e.job.step for e in progress] == [2, 3]
    assert progress[-1].preview_png == b"png3"
    assert events[-1].kind == "completed" and events[-1].job.status is JobStatus.SUCCEEDED


async def test_unannounced_changes_are_seen_by_the_fallback_read(
    store: Store, redis_url: str
) -> None:
    feed = RedisProgressFeed(store, redis_url, fallback_s=0.05)
    account = store.accounts.create_account("a", "free", "chat")
    store.jobs.create("k", account.id, "chat", JobSpec(prompt="p", model="builtin"))

    async def cancel() -> None:
        await asyncio.sleep(0.2)  # a cancel on another gateway announces nothing
        await anyio.to_thread.run_sync(store.jobs.finish, "k", JobStatus.CANCELLED, "by owner")

    task = asyncio.create_task(cancel())
    async with asyncio.timeout(10):
        events = [e async for e in feed.watch("k")]
    await task
    assert [e.kind for e in events] == ["state", "cancelled"]


async def test_an_unreachable_redis_falls_back_to_polling(store: Store) -> None:
    feed = RedisProgressFeed(store, "redis://127.0.0.1:1/0", fallback_s=0.05)
    account = store.accounts.create_account("a", "free", "chat")
    store.jobs.create("m", account.id, "chat", JobSpec(prompt="p", model="builtin"))
    store.jobs.finish("m", JobStatus.FAILED, "no")
    async with asyncio.timeout(10):
        events = [e async for e in feed.watch("m")]
    assert [e.kind for e in events] == ["state", "failed"]
