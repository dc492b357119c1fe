"""How render progress travels from a worker to whoever watches the job.

Two small interfaces: a worker publishes to a ``ProgressSink`` and the gateway reads a
``ProgressFeed``. The embedded implementation goes through the database: the worker
writes the step and a preview blob key to the job row, and the feed polls the row.
That costs one indexed read per watcher every ~150 ms and needs nothing else running;
a Redis pub/sub pair can replace both sides later without touching their callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

import anyio

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

    async def _changes(self, job_id: str) -> AsyncIterator[JobRecord]:
        """The row now, then each time its status or step changes, until it is terminal."""
        job = await anyio.to_thread.run_sync(self._jobs.get, job_id)
        if job is None:
            return
        yield job
        seen = (job.status, job.step)
        while not job.is_terminal:
            await asyncio.sleep(self._interval_s)
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
