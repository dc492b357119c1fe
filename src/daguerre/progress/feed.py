"""How the gateway follows the jobs its clients watch or wait for: ``RowFeed``.

The job row is the record: a worker writes its step and a preview blob key there (in
batches: workers/job_rows.py), then announces that rows changed (transport.py). The
feed reads the rows, never a message's content, so a late watcher starts from the
row's latest state and a change nobody announced (a cancel on another gateway) is
still seen. What tells the feed "read now" is its ``ChangeSignal``: a timer, the
doorbell of this host's workers (polling.py) or Redis pub/sub (redis_pubsub.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from daguerre.domain import JobRecord, JobStatus
from daguerre.progress.events import TERMINAL_EVENT, ProgressEvent
from daguerre.store import Store

# How long a watcher counts as watching after it says so (it says so again well before).
WATCH_S = 30.0


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


class ChangeSignal(Protocol):
    """Says when the followed rows may have changed: the feed reads all of them each
    time ``wait`` returns. The signal decides how often that may be."""

    def follow(self, job_ids: frozenset[str]) -> None:
        """The jobs followed now (called, in the event loop, whenever that set changes)."""

    async def wait(self) -> None:
        """Until the rows may have changed (an announcement, or a timer ran out)."""

    def close(self) -> None:
        """Release what the signal holds (the gateway is stopping)."""


@dataclass(eq=False)
class _Watch:
    job_id: str
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    seen: tuple[str, int] | None = None  # (status, step) the watcher last read
    polled: tuple[str, int] | None = None  # what the last poll found (None: no such job)
    final: JobRecord | None = None  # the whole row, once the poll found it terminal


class RowFeed:
    """Every job anyone watches or waits for on this gateway, followed by one poller:
    each time the signal says so, one query reads the status and step of all of them,
    and only a watcher whose job changed reads its whole row. A sync request, an SSE
    stream and a stream of partial images all cost the same single query per signal,
    however many there are. Blocking reads go through ``Store.run``."""

    def __init__(self, store: Store, signal: ChangeSignal) -> None:
        self._store = store
        self._signal = signal
        self._watches: dict[str, list[_Watch]] = {}
        self._poller: asyncio.Task[None] | None = None

    def close(self) -> None:
        self._signal.close()

    def _preview(self, job: JobRecord) -> bytes | None:
        if job.preview_key is None or job.is_terminal:
            return None
        try:
            return self._store.blobs.get(job.preview_key)
        except KeyError:
            return None

    # --- the shared poller ---------------------------------------------------------------
    def _register(self, job_id: str) -> _Watch:
        watch = _Watch(job_id)
        self._watches.setdefault(job_id, []).append(watch)
        self._signal.follow(frozenset(self._watches))
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="daguerre-progress-feed")
        return watch

    def _unregister(self, watch: _Watch) -> None:
        watches = self._watches.get(watch.job_id, [])
        if watch in watches:
            watches.remove(watch)
        if not watches:
            self._watches.pop(watch.job_id, None)
        self._signal.follow(frozenset(self._watches))

    async def _poll(self) -> None:
        while self._watches:
            await self._signal.wait()
            ids = sorted(self._watches)
            if not ids:
                break
            seen = {job_id: [w.seen for w in self._watches.get(job_id, [])] for job_id in ids}
            try:
                states, finals = await self._store.run(self._read, ids, seen)
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
        jobs = self._store.jobs
        states = jobs.states(ids)
        ended = [
            job_id
            for job_id, state in states.items()
            if JobStatus(state[0]).is_terminal and any(s != state for s in seen.get(job_id, []))
        ]
        return states, (jobs.get_many(ended) if ended else {})

    # --- for watchers --------------------------------------------------------------------
    async def _changes(self, job_id: str) -> AsyncIterator[JobRecord]:
        """The row now, then each time its status or step changes, until it is terminal."""
        # Registered before the first read, so that no change falls between the two.
        watch = self._register(job_id)
        try:
            job = await self._store.run(self._store.jobs.get, job_id)
            if job is None:
                return
            watch.seen = (job.status.value, job.step)
            yield job
            while not job.is_terminal:
                await watch.changed.wait()
                watch.changed.clear()
                fresh = await self._store.run(self._store.jobs.get, job_id)
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
                await self._store.run(self._store.jobs.watch, job_id, until)
                marked = time.monotonic()
            preview = await self._store.run(self._preview, job)
            if first:
                yield ProgressEvent.of("state", job, preview)
                first = False
            elif not job.is_terminal:
                yield ProgressEvent.of("progress", job, preview)
            if job.is_terminal:
                yield ProgressEvent.of(TERMINAL_EVENT[job.status], job)

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
                    return await self._store.run(self._store.jobs.get, job_id)
                watch.seen = state
        finally:
            self._unregister(watch)
