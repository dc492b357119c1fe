"""Progress when Redis goes away mid-run, against a ``redis-server`` of the test's own:
the announcer never raises into the worker and leaves Redis alone between retries, and a
watch that began over Redis finishes by polling the rows, then uses Redis again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from daguerre.domain import JobSpec, JobStatus
from daguerre.progress.redis_pubsub import RedisAnnouncer, RedisProgressFeed, RedisSignal
from daguerre.store import Store
from tests.support.redis_server import RedisServer, redis_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


def test_announcer_never_raises_and_warns_once(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    announce = RedisAnnouncer(server.url, retry_s=0.2)
    announce({"a"})
    server.stop()
    with caplog.at_level(logging.WARNING, logger="daguerre.progress.redis_pubsub"):
        for _ in range(5):
            announce({"a", "b"})
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert announce._outage.waiting  # the worker does not wait on a Redis that is out
    server.start()
    anyio.run(anyio.sleep, 0.25)
    announce({"a"})
    assert not announce._outage.waiting
    announce.close()


async def test_a_watch_survives_redis_going_away_and_coming_back(
    server: RedisServer, store: Store
) -> None:
    feed = RedisProgressFeed(store, server.url, fallback_s=0.05, retry_s=0.2)
    signal = feed._signal
    assert isinstance(signal, RedisSignal)
    announce = RedisAnnouncer(server.url, retry_s=0.2)
    account = store.accounts.create_account("a", "free", "chat")
    store.jobs.create("j", account.id, "chat", JobSpec(prompt="p", model="builtin"))
    store.jobs.mark_running("j", 4, None)

    async def worker() -> None:
        for step in (1, 2, 3):
            await asyncio.sleep(0.3)
            if step == 2:
                await anyio.to_thread.run_sync(server.stop)
            await anyio.to_thread.run_sync(store.jobs.record_progress, "j", step, None)
            await anyio.to_thread.run_sync(announce, {"j"})
        await asyncio.sleep(0.3)
        assert signal._outage.waiting or signal._pubsub is None  # polling the rows now
        await anyio.to_thread.run_sync(server.start)
        await asyncio.sleep(0.5)  # past retry_s: the signal subscribes again
        assert signal._pubsub is not None and not signal._outage.waiting
        await anyio.to_thread.run_sync(store.jobs.finish, "j", JobStatus.FAILED, "no")

    task = asyncio.create_task(worker())
    async with asyncio.timeout(20):
        events = [e async for e in feed.watch("j")]
    await task
    assert [e.job.step for e in events if e.kind == "progress"] == [1, 2, 3]
    assert events[-1].kind == "failed"
    announce.close()
    feed.close()
