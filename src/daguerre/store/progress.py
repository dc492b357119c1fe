"""How render progress travels from a worker to whoever watches the job.

Two small interfaces: a worker publishes to a ``ProgressSink`` and the gateway reads a
``ProgressFeed``. The embedded implementation goes through the database: the worker
writes the step and a preview blob key to the job row, and the feed polls the row.
That costs one indexed read per watcher every ~150 ms and needs nothing else running.
With ``redis_url`` set, ``redis_progress`` adds pub/sub on top: the row stays the
record (so a late watcher still starts from the latest state), and a watcher reads it
when an event arrives instead of on a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import anyio

from daguerre.config import Settings
from daguerre.domain import JobRecord, JobStatus, ProgressEvent
from daguerre.store.blobs import BlobStore
from daguerre.store.jobs import JobStore

TERMINAL_EVENT = {
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}


def preview_key(job_id: str) -> str:
    # One key per job, overwritten each step: watchers only ever want the latest.
    return f"previews/{job_id}/latest.png"


class ProgressSink(Protocol):
    def publish(self, job_id: str, step: int, preview_png: bytes | None) -> bool:
        """Record that ``step`` is done. False means the job is no longer running."""
        ...

    def notify(self, job_id: str) -> None:
        """Tell watchers the job row changed otherwise (it finished, failed, ...)."""
        ...


class ProgressFeed(Protocol):
    def watch(self, job_id: str) -> AsyncIterator[ProgressEvent]:
        """The job's current state first, then progress, ending with a terminal event."""
        ...

    async def wait(self, job_id: str) -> JobRecord | None:
        """The job once it is terminal (None if there is no such job)."""
        ...


class DatabaseProgressSink:
    def __init__(self, jobs: JobStore, blobs: BlobStore) -> None:
        self._jobs = jobs
        self._blobs = blobs

    def publish(self, job_id: str, step: int, preview_png: bytes | None) -> bool:
        key = None
        if preview_png is not None:
            key = preview_key(job_id)
            self._blobs.put(key, preview_png)
        return self._jobs.record_progress(job_id, step, key)

    def notify(self, job_id: str) -> None:
        pass  # watchers poll the row


# Waits until the row may have changed; returns when it is worth reading again.
Signal = Callable[[], Awaitable[None]]


class PollingProgressFeed:
    def __init__(self, jobs: JobStore, blobs: BlobStore, interval_s: float = 0.15) -> None:
        self._jobs = jobs
        self._blobs = blobs
        self._interval_s = interval_s

    def _preview(self, job: JobRecord) -> bytes | None:
        if job.preview_key is None or job.is_terminal:
            return None
        try:
            return self._blobs.get(job.preview_key)
        except KeyError:
            return None

    @asynccontextmanager
    async def _signals(self, job_id: str) -> AsyncIterator[Signal]:
        """How this feed learns that a row may have changed: here, a timer."""

        async def tick() -> None:
            await asyncio.sleep(self._interval_s)

        yield tick

    async def _changes(self, job_id: str) -> AsyncIterator[JobRecord]:
        """The row now, then each time its status or step changes, until it is terminal."""
        # Listen before the first read, so that no change falls between the two.
        async with self._signals(job_id) as changed:
            job = await anyio.to_thread.run_sync(self._jobs.get, job_id)
            if job is None:
                return
            yield job
            seen = (job.status, job.step)
            while not job.is_terminal:
                await changed()
                fresh = await anyio.to_thread.run_sync(self._jobs.get, job_id)
                if fresh is None:
                    return
                job = fresh
                if (job.status, job.step) != seen:
                    seen = (job.status, job.step)
                    yield job

    async def watch(self, job_id: str) -> AsyncIterator[ProgressEvent]:
        first = True
        async for job in self._changes(job_id):
            preview = await anyio.to_thread.run_sync(self._preview, job)
            if first:
                yield ProgressEvent("state", job, preview)
                first = False
            elif not job.is_terminal:
                yield ProgressEvent("progress", job, preview)
            if job.is_terminal:
                yield ProgressEvent(TERMINAL_EVENT[job.status], job)

    async def wait(self, job_id: str) -> JobRecord | None:
        last: JobRecord | None = None
        async for job in self._changes(job_id):
            last = job
        return last


def progress_sink(settings: Settings, jobs: JobStore, blobs: BlobStore) -> ProgressSink:
    """The worker's side: the database, plus Redis pub/sub when ``redis_url`` is set."""
    sink = DatabaseProgressSink(jobs, blobs)
    if settings.redis_url:
        from daguerre.store.redis_progress import RedisProgressSink

        return RedisProgressSink(sink, settings.redis_url)
    return sink


def progress_feed(settings: Settings, jobs: JobStore, blobs: BlobStore) -> ProgressFeed:
    """The gateway's side, matching ``progress_sink``."""
    if settings.redis_url:
        from daguerre.store.redis_progress import RedisProgressFeed

        return RedisProgressFeed(jobs, blobs, settings.redis_url, settings.redis_fallback_poll_s)
    return PollingProgressFeed(jobs, blobs, settings.events_poll_interval_s)
