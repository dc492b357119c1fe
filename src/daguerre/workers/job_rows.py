"""A worker's writes to job rows, batched across every render it holds.

A batched step moves dozens of renders at once, and each wants its row to say so.
Written one by one, each change costs a thread hop and a transaction; here every change
asked for in one turn of the event loop goes to the database in one transaction, in one
thread hop:

- ``change`` (a render completed) is flushed at once and says whether it applied (each
  is a move of the job's lifecycle, store/job_states.py, and a move its table refuses
  is not written: False means the job is over); ``note`` (a render started, paused or
  resumed) is flushed the same way but not waited for: if it does not apply, the job
  counts as stopped;
- ``progress`` (a step, and the preview it wrote) is coalesced per job, latest wins,
  and written at most every ``interval_s``: watchers poll rows every ~150 ms;
- a flush also asks about the renders' jobs (new ones at once, all of them every
  ``liveness_s``): which have finished meanwhile (cancelled by their owner, usually),
  so that their renders stop at the next step instead of at their next heartbeat; and
  which someone watches, so that only those render previews.

After a flush, ``announce`` is told which jobs changed (Redis pub/sub when configured,
else the doorbells of the gateways on this host: store/doorbell.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from daguerre.store.job_states import JobChanges
from daguerre.store.jobs import JobStore
from daguerre.store.threads import run_blocking

log = logging.getLogger(__name__)

Change = Callable[[JobChanges], bool]


@dataclass
class _Batch:
    changes: list[tuple[str, Change, asyncio.Future[bool]]] = field(default_factory=list)
    progress: dict[str, tuple[int, str | None]] = field(default_factory=dict)


class JobRows:
    def __init__(
        self,
        jobs: JobStore,
        interval_s: float = 0.1,
        liveness_s: float = 1.0,
        announce: Callable[[set[str]], None] | None = None,
        listen: Callable[[set[str], set[str]], None] | None = None,
    ) -> None:
        self._jobs = jobs
        self._interval_s = interval_s
        self._liveness_s = liveness_s
        self._announce = announce
        # Told (watched, stopped) after every flush: the engine acts on both.
        self._listen = listen
        self._batch = _Batch()
        self._tracked: set[str] = set()
        self._unchecked: set[str] = set()  # tracked since the last check
        self._stopped: set[str] = set()
        self._watched: set[str] = set()
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._last_progress = 0.0
        self._last_liveness = 0.0
        self._task: asyncio.Task[None] | None = None

    # --- for renders ---------------------------------------------------------------------
    async def change(self, job_id: str, change: Change) -> bool:
        """Apply ``change`` at the next flush (this turn of the loop); whether it applied."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._batch.changes.append((job_id, change, future))
        self._urgent.set()
        self._wake.set()
        return await future

    def note(self, job_id: str, change: Change) -> None:
        """Apply ``change`` at the next flush without waiting for it; if it does not
        apply (the job is over), ``stopped(job_id)`` says so from then on."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: self._noted(job_id, f))
        self._batch.changes.append((job_id, change, future))
        self._urgent.set()
        self._wake.set()

    def _noted(self, job_id: str, future: asyncio.Future[bool]) -> None:
        # Only a change the database refused; one that failed to reach it is no reason to
        # stop a render (its next flush, or its end, tries again).
        refused = not future.cancelled() and future.exception() is None and not future.result()
        if refused and job_id in self._tracked:
            self._stopped.add(job_id)
            if self._listen is not None:
                self._listen(self._watched, self._stopped)

    def progress(self, job_id: str, step: int, preview_key: str | None = None) -> None:
        """Note a step (and its preview) for the next progress flush."""
        _, earlier_key = self._batch.progress.get(job_id, (0, None))
        self._batch.progress[job_id] = (step, preview_key or earlier_key)
        self._wake.set()

    def track(self, job_id: str) -> None:
        """A render of ``job_id`` runs here: check on its job at the next flush."""
        self._tracked.add(job_id)
        self._unchecked.add(job_id)
        self._wake.set()

    def untrack(self, job_id: str) -> None:
        self._tracked.discard(job_id)
        self._unchecked.discard(job_id)
        self._stopped.discard(job_id)
        self._watched.discard(job_id)
        self._batch.progress.pop(job_id, None)

    def stopped(self, job_id: str) -> bool:
        """The job finished elsewhere (cancelled, usually): its render should stop."""
        return job_id in self._stopped

    def watched(self, job_id: str) -> bool:
        """Someone watches the job: its render should show previews."""
        return job_id in self._watched

    # --- the flusher ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="daguerre-job-rows")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._urgent.is_set():
                # Progress only: no sooner than the interval after the last one.
                delay = self._last_progress + self._interval_s - time.monotonic()
                if delay > 0:
                    with suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._urgent.wait()
            await asyncio.sleep(0)  # the rest of this turn's renders add theirs
            self._wake.clear()
            self._urgent.clear()
            batch, self._batch = self._batch, _Batch()
            await self._flush(batch)

    async def _flush(self, batch: _Batch) -> None:
        now = time.monotonic()
        if batch.progress:
            self._last_progress = now
        check: set[str] = set(self._unchecked)
        if self._tracked and now - self._last_liveness >= self._liveness_s:
            check, self._last_liveness = set(self._tracked), now
        self._unchecked.clear()
        try:
            applied, (stopped, watched) = await run_blocking(self._write, batch, sorted(check))
        except Exception as err:  # the database is down or busy: say so
            log.warning("could not write %d job changes: %s", len(batch.changes), err)
            for _, _, future in batch.changes:
                if not future.done():
                    future.set_exception(err)
            return
        self._stopped |= stopped & self._tracked
        self._watched = (self._watched - check) | (watched & self._tracked)
        if self._listen is not None:
            self._listen(self._watched, self._stopped)
        for (_, _, future), ok in zip(batch.changes, applied, strict=True):
            if not future.done():
                future.set_result(ok)

    def _write(
        self, batch: _Batch, check: list[str]
    ) -> tuple[list[bool], tuple[set[str], set[str]]]:
        with self._jobs.changes() as changes:
            applied = [change(changes) for _, change, _ in batch.changes]
            for job_id, (step, preview_key) in batch.progress.items():
                changes.record_progress(job_id, step, preview_key)
            found = changes.check(check)
        if self._announce is not None:  # after the commit: watchers then read the rows
            self._announce({job_id for job_id, _, _ in batch.changes} | set(batch.progress))
        return applied, found
