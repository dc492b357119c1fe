"""How render progress travels from a worker to whoever watches the job.

The job row is the record: a worker writes its step and a preview blob key there (in
batches: workers/job_rows.py), and the gateway reads a ``ProgressFeed``. The embedded
feed polls the row, which needs nothing else running, and workers on the same host
ring its doorbell after each commit (store/doorbell.py), so that it reads at once.
With ``redis_url`` set, the worker announces each change on the job's Redis channel
instead (``announcer``) and ``redis_progress`` reads the row when an announcement
arrives; a late watcher still starts from the row's latest state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import anyio

from daguerre.config import Settings
from daguerre.domain import JobRecord, JobStatus, ProgressEvent
from daguerre.store.blobs import BlobStore
from daguerre.store.doorbell import Doorbell, DoorbellListener
from daguerre.store.jobs import JobStore

TERMINAL_EVENT = {
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}


def preview_key(job_id: str) -> str:
    # One key per job, overwritten each step: watchers only ever want the latest.
    return f"previews/{job_id}/latest.png"


class ProgressFeed(Protocol):
    def watch(self, job_id: str) -> AsyncIterator[ProgressEvent]:
        """The job's current state first, then progress, ending with a terminal event."""
        ...

    async def wait(self, job_id: str) -> JobRecord | None:
        """The job once it is terminal (None if there is no such job)."""
        ...

    def close(self) -> None:
        """Release what the feed holds (the gateway is stopping)."""
        ...


# How long a watcher counts as watching after it says so (it says so again well before).
WATCH_S = 30.0


@dataclass(eq=False)
class _Watch:
    job_id: str
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    seen: tuple[str, int] | None = None  # (status, step) the watcher last read
    polled: tuple[str, int] | None = None  # what the last poll found (None: no such job)
    final: JobRecord | None = None  # the whole row, once the poll found it terminal


class PollingProgressFeed:
    """Every job anyone watches or waits for on this gateway, followed by one poller:
    each tick, one query reads the status and step of all of them, and only a watcher
    whose job changed reads its whole row. A sync request, an SSE stream and a stream of
    partial images all cost the same single query per tick, however many there are.

    The tick follows the load: every ``MIN_TICK_S`` for a lone waiter (an idle service
    answers within milliseconds of the render), a little longer per job followed, up to
    ``interval_s`` (a query of many ids costs more, and under load latency is seconds).

    With a ``doorbell`` (store/doorbell.py), workers on this host ring after they commit
    rows: the poller reads as soon as one rings, no more often than the tick, and once
    rings are heard its timer falls back to ``interval_s``, only to catch writers that
    do not ring. An idle answer then costs neither a tick's wait nor a busy poller."""

    MIN_TICK_S = 0.005
    TICK_PER_JOB_S = 0.00025
    # Rings heard this recently mean the workers here ring: the timer may slow down.
    RINGS_TRUSTED_S = 300.0

    def __init__(
        self,
        jobs: JobStore,
        blobs: BlobStore,
        interval_s: float = 0.15,
        doorbell: DoorbellListener | None = None,
    ) -> None:
        self._jobs = jobs
        self._blobs = blobs
        self._interval_s = interval_s
        self._doorbell = doorbell
        self._watches: dict[str, list[_Watch]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._last_poll = float("-inf")

    def _preview(self, job: JobRecord) -> bytes | None:
        if job.preview_key is None or job.is_terminal:
            return None
        try:
            return self._blobs.get(job.preview_key)
        except KeyError:
            return None

    # --- the shared poller ---------------------------------------------------------------
    async def _tick(self) -> None:
        """Wait until rows may have changed: a timer, or a worker's ring."""
        tick = min(self.MIN_TICK_S + self.TICK_PER_JOB_S * len(self._watches), self._interval_s)
        if self._doorbell is None:
            await asyncio.sleep(tick)
            return
        since = time.monotonic() - self._last_poll
        if since < tick:  # rings never make the poller read more often than its tick
            await asyncio.sleep(tick - since)
        trusted = time.monotonic() - self._doorbell.last_ring < self.RINGS_TRUSTED_S
        await self._doorbell.wait(self._interval_s if trusted else tick)

    def close(self) -> None:
        if self._doorbell is not None:
            self._doorbell.close()

    def _followed(self, job_ids: set[str]) -> None:
        """The set of followed jobs changed (a subclass subscribes to them)."""

    def _register(self, job_id: str) -> _Watch:
        watch = _Watch(job_id)
        self._watches.setdefault(job_id, []).append(watch)
        self._followed(set(self._watches))
        if self._poller is None or self._poller.done():
            if self._doorbell is not None:
                self._doorbell.open()
            self._poller = asyncio.create_task(self._poll(), name="daguerre-progress-feed")
        return watch

    def _unregister(self, watch: _Watch) -> None:
        watches = self._watches.get(watch.job_id, [])
        if watch in watches:
            watches.remove(watch)
        if not watches:
            self._watches.pop(watch.job_id, None)
        self._followed(set(self._watches))

    async def _poll(self) -> None:
        while self._watches:
            await self._tick()
            ids = sorted(self._watches)
            if not ids:
                break
            seen = {job_id: [w.seen for w in self._watches.get(job_id, [])] for job_id in ids}
            self._last_poll = time.monotonic()
            try:
                states, finals = await anyio.to_thread.run_sync(self._read, ids, seen)
            except Exception:  # the database is busy or down: keep the watchers waiting
                continue
            for job_id in ids:
                state = states.get(job_id)
                for watch in self._watches.get(job_id, []):
                    watch.polled, watch.final = state, finals.get(job_id)
                    if state is None or state != watch.seen:
                        watch.changed.set()

    def _read(
        self, ids: list[str], seen: dict[str, list[tuple[str, int] | None]]
    ) -> tuple[dict[str, tuple[str, int]], dict[str, JobRecord]]:
        """Every followed job's status and step, and the whole row of those that just
        ended (what a waiter answers with), in one trip to a thread."""
        states = self._jobs.states(ids)
        ended = [
            job_id
            for job_id, state in states.items()
            if JobStatus(state[0]).is_terminal and any(s != state for s in seen.get(job_id, []))
        ]
        return states, (self._jobs.get_many(ended) if ended else {})

    # --- for watchers --------------------------------------------------------------------
    async def _changes(self, job_id: str) -> AsyncIterator[JobRecord]:
        """The row now, then each time its status or step changes, until it is terminal."""
        # Registered before the first read, so that no change falls between the two.
        watch = self._register(job_id)
        try:
            job = await anyio.to_thread.run_sync(self._jobs.get, job_id)
            if job is None:
                return
            watch.seen = (job.status.value, job.step)
            yield job
            while not job.is_terminal:
                await watch.changed.wait()
                watch.changed.clear()
                fresh = await anyio.to_thread.run_sync(self._jobs.get, job_id)
                if fresh is None:
                    return
                job = fresh
                if (job.status.value, job.step) != watch.seen:
                    watch.seen = (job.status.value, job.step)
                    yield job
        finally:
            self._unregister(watch)

    async def watch(self, job_id: str) -> AsyncIterator[ProgressEvent]:
        first = True
        marked = 0.0
        async for job in self._changes(job_id):
            if not job.is_terminal and time.monotonic() - marked > WATCH_S / 3:
                # Its worker renders previews while someone watches (and only then).
                until = datetime.now(UTC) + timedelta(seconds=WATCH_S)
                await anyio.to_thread.run_sync(self._jobs.watch, job_id, until)
                marked = time.monotonic()
            preview = await anyio.to_thread.run_sync(self._preview, job)
            if first:
                yield ProgressEvent("state", job, preview)
                first = False
            elif not job.is_terminal:
                yield ProgressEvent("progress", job, preview)
            if job.is_terminal:
                yield ProgressEvent(TERMINAL_EVENT[job.status], job)

    async def wait(self, job_id: str) -> JobRecord | None:
        """The job once it is terminal: it follows the polled status alone, and reads
        the whole row (with its images) once, at the end."""
        watch = self._register(job_id)
        try:
            while True:
                await watch.changed.wait()
                watch.changed.clear()
                state = watch.polled
                if state is None or JobStatus(state[0]).is_terminal:
                    if watch.final is not None:
                        return watch.final
                    return await anyio.to_thread.run_sync(self._jobs.get, job_id)
                watch.seen = state
        finally:
            self._unregister(watch)


def doorbell_folder(settings: Settings) -> Path:
    """Where the gateways of this host leave their doorbells (store/doorbell.py)."""
    return settings.data_dir / "doorbells"


class Announcer(Protocol):
    def __call__(self, job_ids: set[str]) -> None:
        """These jobs' rows changed (called after the commit)."""

    def close(self) -> None: ...


def announcer(settings: Settings) -> Announcer:
    """How a worker tells watchers that job rows changed: Redis pub/sub when configured,
    else the doorbell of every gateway on this host (whose feed polls the rows)."""
    if settings.redis_url:
        from daguerre.store.redis_progress import RedisAnnouncer

        return RedisAnnouncer(settings.redis_url)
    return Doorbell(doorbell_folder(settings))


def progress_feed(settings: Settings, jobs: JobStore, blobs: BlobStore) -> ProgressFeed:
    """The gateway's side, matching ``announcer``."""
    if settings.redis_url:
        from daguerre.store.redis_progress import RedisProgressFeed

        return RedisProgressFeed(jobs, blobs, settings.redis_url, settings.redis_fallback_poll_s)
    return PollingProgressFeed(
        jobs,
        blobs,
        settings.events_poll_interval_s,
        DoorbellListener(doorbell_folder(settings)),
    )
