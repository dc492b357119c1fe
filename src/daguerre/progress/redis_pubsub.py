"""Progress through Redis pub/sub, for gateways and workers on many hosts.

The worker still writes the job row (and the preview blob) first, then publishes a
small "changed" message on the job's channel (one pipeline per batch of changes); a
gateway watching the job subscribes before it reads the row, so it gets the latest
state at once and then one read per event instead of one every poll interval.
Anything that changes a row without announcing it (a cancel, a finalize on another
host) is still seen within ``fallback_s``: Redis is the fast path, never the only one.

Redis may go away at run time. Then both sides leave it alone for ``retry_s`` (one
warning per outage, not one per message): the announcer drops its messages, the signal
becomes a timer of ``fallback_s``, and watchers read the rows at that pace until Redis
answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import redis
import redis.asyncio as aioredis

from daguerre.progress.feed import RowFeed
from daguerre.store import Store

log = logging.getLogger(__name__)


def channel(job_id: str) -> str:
    return f"daguerre:job:{job_id}"


class Outage:
    """When Redis last failed, and when to try it again: a warning when it goes, an info
    line when it is back, nothing in between."""

    def __init__(self, down: str, back: str, retry_s: float) -> None:
        self._down, self._back = down, back
        self._retry_s = retry_s
        self._retry_at: float | None = None  # time.monotonic(); None while Redis answers

    @property
    def waiting(self) -> bool:
        """Redis failed less than ``retry_s`` ago: do not try it yet."""
        return self._retry_at is not None and time.monotonic() < self._retry_at

    def failed(self, err: BaseException) -> None:
        if self._retry_at is None:
            log.warning("Redis unavailable (%s); %s until it is back", err, self._down)
        self._retry_at = time.monotonic() + self._retry_s

    def answered(self) -> None:
        if self._retry_at is not None:
            log.info("Redis is back; %s", self._back)
        self._retry_at = None


class RedisAnnouncer:
    """A worker's side: "this job's row changed", on the job's channel."""

    def __init__(self, url: str, retry_s: float = 5.0) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._outage = Outage(
            "workers do not announce progress", "workers announce progress again", retry_s
        )

    def close(self) -> None:
        self._redis.close()

    def __call__(self, job_ids: set[str]) -> None:
        """Never raises: the rows are already written, and watchers catch up by their
        fallback read; while Redis is out, the worker does not wait on it either."""
        if self._outage.waiting:
            return
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.publish(channel(job_id), json.dumps({"job_id": job_id}))
                pipe.execute()
        except (redis.RedisError, OSError) as err:
            self._outage.failed(err)
        else:
            self._outage.answered()


class RedisSignal:
    """A gateway's side, as a ``ChangeSignal``: one pub/sub connection, subscribed to
    the channels of the jobs the feed follows. ``wait`` returns on an announcement, when
    the followed jobs change, or after ``fallback_s`` without either."""

    def __init__(self, url: str, fallback_s: float = 1.0, retry_s: float = 5.0) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2.0)
        self._fallback_s = fallback_s
        self._outage = Outage(
            "progress falls back to polling", "progress comes through it again", retry_s
        )
        self._pubsub: aioredis.client.PubSub | None = None
        self._subscribed: frozenset[str] = frozenset()
        self._wanted: frozenset[str] = frozenset()

    def follow(self, job_ids: frozenset[str]) -> None:
        self._wanted = job_ids

    def close(self) -> None:
        pass  # the pub/sub connection closes with its event loop

    async def wait(self) -> None:
        if self._outage.waiting:  # a timer until Redis is tried again
            await asyncio.sleep(self._fallback_s)
            return
        try:
            if self._wanted != self._subscribed:
                await self._subscribe()
                self._outage.answered()
                return  # read the rows now: a change made before subscribing went unheard
            await self._message()
        except (redis.RedisError, OSError) as err:
            self._outage.failed(err)
            await self._drop_pubsub()
            await asyncio.sleep(self._fallback_s)

    async def _drop_pubsub(self) -> None:
        """Forget the broken connection; the next try subscribes afresh."""
        pubsub, self._pubsub, self._subscribed = self._pubsub, None, frozenset()
        if pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):  # it is broken already
                await pubsub.aclose()

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

    def __init__(
        self, store: Store, url: str, fallback_s: float = 1.0, retry_s: float = 5.0
    ) -> None:
        super().__init__(store, RedisSignal(url, fallback_s, retry_s))
