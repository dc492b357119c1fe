"""Progress through Redis pub/sub, for gateways and workers on many hosts.

The worker still writes the job row (and the preview blob) first, then publishes a
small "changed" message on the job's channel (one pipeline per batch of changes); a
gateway watching the job subscribes before it reads the row, so it gets the latest
state at once and then one read per event instead of one every poll interval.
Anything that changes a row without announcing it (a cancel, a finalize on another
host) is still seen within ``fallback_s``: Redis is the fast path, never the only one.
"""

from __future__ import annotations

import asyncio
import json
import logging

import redis
import redis.asyncio as aioredis

from daguerre.progress.feed import RowFeed
from daguerre.store import Store

log = logging.getLogger(__name__)


def channel(job_id: str) -> str:
    return f"daguerre:job:{job_id}"


class RedisAnnouncer:
    """A worker's side: "this job's row changed", on the job's channel."""

    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    def close(self) -> None:
        self._redis.close()

    def __call__(self, job_ids: set[str]) -> None:
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.publish(channel(job_id), json.dumps({"job_id": job_id}))
                pipe.execute()
        except redis.RedisError as err:
            # The rows are already written: watchers catch up by their fallback read.
            log.warning("could not announce %d job changes to Redis: %s", len(job_ids), err)


class RedisSignal:
    """A gateway's side, as a ``ChangeSignal``: one pub/sub connection, subscribed to
    the channels of the jobs the feed follows. ``wait`` returns on an announcement, when
    the followed jobs change, or after ``fallback_s`` without either."""

    def __init__(self, url: str, fallback_s: float = 1.0) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2.0)
        self._fallback_s = fallback_s
        self._pubsub: aioredis.client.PubSub | None = None
        self._subscribed: frozenset[str] = frozenset()
        self._wanted: frozenset[str] = frozenset()

    def follow(self, job_ids: frozenset[str]) -> None:
        self._wanted = job_ids

    def close(self) -> None:
        pass  # the pub/sub connection closes with its event loop

    async def wait(self) -> None:
        try:
            if self._wanted != self._subscribed:
                await self._subscribe()
                return  # read the rows now: a change made before subscribing went unheard
            await self._message()
        except (redis.RedisError, OSError) as err:
            log.warning("Redis unavailable (%s); progress falls back to polling", err)
            self._pubsub, self._subscribed = None, frozenset()
            await asyncio.sleep(self._fallback_s)

    async def _subscribe(self) -> None:
        if self._pubsub is None:
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        new, gone = self._wanted - self._subscribed, self._subscribed - self._wanted
        if new:
            await self._pubsub.subscribe(*(channel(j) for j in new))
        if gone:
            await self._pubsub.unsubscribe(*(channel(j) for j in gone))
        self._subscribed = self._wanted

    async def _message(self) -> None:
        assert self._pubsub is not None
        deadline = asyncio.get_running_loop().time() + self._fallback_s
        while asyncio.get_running_loop().time() < deadline:
            if await self._pubsub.get_message(timeout=0.05) is not None:
                return
            if self._wanted != self._subscribed:
                return


class RedisProgressFeed(RowFeed):
    """The row feed woken by Redis announcements, read every ``fallback_s`` anyway."""

    def __init__(self, store: Store, url: str, fallback_s: float = 1.0) -> None:
        super().__init__(store, RedisSignal(url, fallback_s))
