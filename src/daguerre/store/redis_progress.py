"""Progress events through Redis pub/sub, for gateways and workers on many hosts.

The worker still writes the job row (and the preview blob) first, then publishes a
small "changed" message on the job's channel; a gateway watching the job subscribes
before it reads the row, so it gets the latest state at once and then one read per
event instead of one every poll interval. Anything that changes a row without
announcing it (a cancel, a finalize on another host) is still seen within
``fallback_s``: Redis is the fast path, never the only one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
import redis.asyncio as aioredis

from daguerre.store.blobs import BlobStore
from daguerre.store.jobs import JobStore
from daguerre.store.progress import DatabaseProgressSink, PollingProgressFeed, Signal

log = logging.getLogger(__name__)


def channel(job_id: str) -> str:
    return f"daguerre:job:{job_id}"


class RedisProgressSink:
    def __init__(self, database: DatabaseProgressSink, url: str) -> None:
        self._database = database
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    def _announce(self, job_id: str, step: int | None) -> None:
        try:
            self._redis.publish(channel(job_id), json.dumps({"job_id": job_id, "step": step}))
        except redis.RedisError as err:
            # The row is already written: watchers catch up by their fallback read.
            log.warning("job %s: could not publish progress to Redis: %s", job_id, err)

    def publish(self, job_id: str, step: int, preview_png: bytes | None) -> bool:
        running = self._database.publish(job_id, step, preview_png)
        self._announce(job_id, step)
        return running

    def notify(self, job_id: str) -> None:
        self._announce(job_id, None)


class RedisProgressFeed(PollingProgressFeed):
    def __init__(self, jobs: JobStore, blobs: BlobStore, url: str, fallback_s: float = 1.0) -> None:
        super().__init__(jobs, blobs, fallback_s)
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2.0)
        self._fallback_s = fallback_s

    @asynccontextmanager
    async def _signals(self, job_id: str) -> AsyncIterator[Signal]:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel(job_id))
            subscribed = True
        except (redis.RedisError, OSError) as err:
            log.warning("Redis unavailable (%s); job %s falls back to polling", err, job_id)
            subscribed = False
        if not subscribed:
            async with super()._signals(job_id) as tick:
                yield tick
            return

        async def message() -> None:
            try:
                # Returns on a message, or after fallback_s with None: read the row anyway.
                await pubsub.get_message(timeout=self._fallback_s)
            except (redis.RedisError, OSError):
                await asyncio.sleep(self._fallback_s)

        try:
            yield message
        finally:
            try:
                await pubsub.unsubscribe()
                await pubsub.aclose()
            except (redis.RedisError, OSError):
                pass
